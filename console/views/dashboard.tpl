% rebase('layout.tpl')
<h1>Dashboard</h1>
% for w in warnings:
<p class="flash warn">{{w}}</p>
% end
<div class="two-col">
<section class="card">
<h2>Device health</h2>
<dl class="health" id="health">
% for label, text, cls in rows:
<div class="{{cls}}"><dt>{{label}}</dt><dd>{{text}}</dd></div>
% end
</dl>
<p><a href="/kiosk" class="button secondary">Open kiosk screen</a></p>
</section>
<section class="card">
<h2>Live view</h2>
% if fw_error:
<p class="muted">No live view: the firmware is not running.</p>
% else:
<img class="live" src="/live/stream.mjpg" alt="live camera view with detected faces">
<p class="muted">Boxes show detected faces with their name and liveness state.</p>
% end
</section>
</div>
