<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{title}} · {{device_name}} · Rollcall</title>
<link rel="stylesheet" href="/static/style.css">
<script src="/static/app.js" defer></script>
</head>
<body>
<header class="top">
  <a class="brand" href="/">Rollcall <small>{{device_name}}</small></a>
  % if user:
  <nav>
    % admin_links = (("/people", "People"), ("/rosters", "Rosters"), ("/unknowns", "Unknown faces"), ("/privacy", "Privacy"), ("/users", "Users"), ("/settings", "Settings"), ("/audit", "Audit"))
    % links = (("/", "Dashboard"), ("/sessions", "Sessions"), ("/attendance", "Attendance"), ("/reports", "Reports"), ("/kiosk", "Kiosk")) + (admin_links if role == "admin" else ())
    % for href, label in links:
    <a href="{{href}}" class="{{'active' if nav == href else ''}}">{{label}}</a>
    % end
    <a href="/account" class="{{'active' if nav == '/account' else ''}}" id="account-link">{{user}} ({{role}})</a>
    <form method="post" action="/logout" class="inline"><input type="hidden" name="csrf" value="{{csrf}}"><button class="link">Log out</button></form>
  </nav>
  % end
</header>
% if fw_error:
<div class="banner" role="alert" id="fw-banner">Firmware not running — {{fw_error}}. Login and settings still work; people, sessions and attendance need the firmware (<code>systemctl start rollcall-firmware</code>).
% if fw_start_error:
<div id="fw-start-error">Its last start failed at {{when(fw_start_error[0])}}:<pre>{{fw_start_error[1]}}</pre></div>
% end
</div>
% elif fw_status and fw_status.get('restart_needed') and role == 'admin':
<div class="banner" role="status" id="restart-banner">Saved settings that need a firmware restart: {{', '.join(fw_status['restart_needed'])}}.
<form method="post" action="/settings/restart" class="inline"><input type="hidden" name="csrf" value="{{csrf}}"><button type="submit" id="restart-firmware">Restart firmware</button></form></div>
% end
<main>
% for kind, message in flashes:
<p class="flash {{kind}}" role="status">{{message}}</p>
% end
{{!base}}
</main>
</body>
</html>
