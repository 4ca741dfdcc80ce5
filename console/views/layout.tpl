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
    % for href, label in (("/", "Dashboard"), ("/people", "People"), ("/rosters", "Rosters"), ("/sessions", "Sessions"), ("/attendance", "Attendance"), ("/unknowns", "Unknown faces"), ("/privacy", "Privacy"), ("/settings", "Settings"), ("/audit", "Audit")):
    <a href="{{href}}" class="{{'active' if nav == href else ''}}">{{label}}</a>
    % end
    <form method="post" action="/logout" class="inline"><input type="hidden" name="csrf" value="{{csrf}}"><button class="link">Log out {{user}}</button></form>
  </nav>
  % end
</header>
% if fw_error:
<div class="banner" role="alert" id="fw-banner">Firmware not running — {{fw_error}}. Login and settings still work; people, sessions and attendance need the firmware (<code>systemctl start rollcall-firmware</code>).</div>
% end
<main>
% for kind, message in flashes:
<p class="flash {{kind}}" role="status">{{message}}</p>
% end
{{!base}}
</main>
</body>
</html>
