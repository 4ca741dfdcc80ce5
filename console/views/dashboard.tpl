% rebase('layout.tpl')
<h1>Dashboard</h1>
% for w in warnings:
<p class="flash warn">{{w}}</p>
% end
% for n in notices:
<section class="flash error notice" id="notice-{{n['id']}}">
  <strong>Damage: {{n['message']}}</strong>
  % if n.get('lost'):
  <br>What is lost or at risk: {{n['lost']}}
  % end
  % if n.get('copy'):
  <br>A copy is kept at <code>{{n['copy']}}</code>
  % end
  <br><small>first seen {{n['raised_at']}}{{' (%d times)' % n['count'] if n.get('count', 1) > 1 else ''}}</small>
  <form method="post" action="/notices/{{n['id']}}/ack" class="inline"><input type="hidden" name="csrf" value="{{csrf}}"><button>Acknowledge</button></form>
</section>
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
