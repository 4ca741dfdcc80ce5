% rebase('layout.tpl')
% s = grid['session']
<h1>{{s.get('name')}} <span class="pill {{s.get('state')}}" id="session-state">{{s.get('state')}}</span></h1>
<p class="muted">Room {{s.get('room')}} · {{fmt(s.get('scheduled_start'))}} – {{fmt(s.get('scheduled_end'))}} · roster {{grid['roster'].get('name') or ''}} · liveness <span id="session-liveness">{{s.get('liveness_policy') or 'device default'}}</span>
 · <a href="/sessions/{{q(s['id'])}}/export.csv" id="session-csv">Export CSV</a>
 · <a href="/sessions/{{q(s['id'])}}/export.xlsx" id="session-xlsx">Export XLSX</a>
 · <a href="/reports?roster_id={{q(s.get('roster_id') or '')}}">Roster report</a></p>
<div class="row">
% allowed = {"scheduled": ("start", "cancel"), "in_progress": ("stop", "cancel")}.get(s.get('state'), ())
% for action, label, cls in (("start", "Start", ""), ("stop", "Stop", "secondary"), ("cancel", "Cancel", "danger")):
<form method="post" action="/sessions/{{q(s['id'])}}/{{action}}" class="inline" {{!'data-confirm="Cancel this session?"' if action == 'cancel' else ''}}>
  <input type="hidden" name="csrf" value="{{csrf}}">
  % if action == "start" and "start" in allowed:
  <select name="liveness_policy" id="start-liveness" aria-label="Liveness policy for this session">
  % for value, text in (("", "liveness: " + (s.get('liveness_policy') or "device default")), ("blink", "blink"), ("blink_challenge", "blink challenge"), ("challenge", "head-pose challenge")):
  <option value="{{value}}">{{text}}</option>
  % end
  </select>
  % end
  <button type="submit" class="{{cls}}" id="btn-{{action}}" {{'' if action in allowed else 'disabled'}}>{{label}}</button>
</form>
% end
</div>
<p id="grid-counts" class="counts">
% for st in statuses:
<span class="pill {{st}}">{{st}}: <b data-count="{{st}}">{{grid['counts'].get(st, 0)}}</b></span>
% end
</p>
<section class="card">
<table class="list" id="grid" data-grid="/api/sessions/{{q(s['id'])}}/grid"><thead><tr><th>Seat</th><th>Name</th><th>Status</th><th>Time</th><th>Change</th></tr></thead>
<tbody>
% for r in grid['rows']:
<tr data-person="{{r['person_id']}}"><td>{{r.get('seat') or ''}}</td><td>{{r['name']}}</td><td><span class="pill {{r['status']}}" data-status>{{r['status']}}</span></td><td data-at>{{fmt(r.get('at'))}}</td>
<td><form method="post" action="/sessions/{{q(s['id'])}}/status" class="inline">
  <input type="hidden" name="csrf" value="{{csrf}}"><input type="hidden" name="person_id" value="{{r['person_id']}}">
  <select name="status" aria-label="status of {{r['name']}}">
  % for st in statuses:
  <option value="{{st}}" {{'selected' if st == r['status'] else ''}}>{{st}}</option>
  % end
  </select><button type="submit" class="secondary small">Set</button></form></td></tr>
% end
</tbody></table>
</section>
