% rebase('layout.tpl')
<h1>Sessions</h1>
<section class="card">
<table class="list" id="sessions-table"><thead><tr><th>Name</th><th>Room</th><th>Start</th><th>End</th><th>State</th></tr></thead><tbody>
% for s in items:
<tr><td><a href="/sessions/{{q(s['id'])}}">{{s.get('name')}}</a></td><td>{{s.get('room')}}</td><td>{{fmt(s.get('scheduled_start'))}}</td><td>{{fmt(s.get('scheduled_end'))}}</td><td><span class="pill {{s.get('state')}}">{{s.get('state')}}</span></td></tr>
% end
% if not items:
<tr><td colspan="5" class="muted">No sessions yet.</td></tr>
% end
</tbody></table>
</section>
% if role == "admin":
<section class="card">
<h2>Schedule a session</h2>
<form method="post" action="/sessions" class="grid-form" id="session-form">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <label>Name <input name="name" required maxlength="120"></label>
  <label>Roster <select name="roster_id" required>
  % for r in rosters:
  <option value="{{r['id']}}">{{r['name']}}</option>
  % end
  </select></label>
  <label>Room <input name="room" value="{{room}}" required pattern="[A-Za-z0-9_.-]{1,64}"></label>
  <label>Day <input name="day" type="date" value="{{today}}" required></label>
  <label>Start <input name="start" type="time" value="09:00" required></label>
  <label>End <input name="end" type="time" value="10:00" required></label>
  <label>Late after (minutes) <input name="late_after_min" type="number" min="0" max="600" value="10"></label>
  <label>Liveness <select name="liveness_policy" id="session-liveness">
  <option value="">device default</option>
  <option value="blink">blink (canteen door)</option>
  <option value="blink_challenge">blink challenge (1..N blinks)</option>
  <option value="challenge">head-pose challenge (exam)</option>
  </select></label>
  <button type="submit">Schedule</button>
</form>
</section>
% end
