% rebase('layout.tpl')
% members = {e['person_id']: e.get('seat') for e in (roster or {}).get('entries', [])}
% if roster:
<h1>Roster: {{roster['name']}} <small>v{{roster.get('version', '')}}</small></h1>
<p><a href="/rosters/{{q(roster['id'])}}/export.csv">Export CSV</a> · <a href="/rosters/{{q(roster['id'])}}/export.csv?bom=1">Export CSV for Excel</a> · <a href="/rosters">All rosters</a></p>
% else:
<h1>Rosters</h1>
<section class="card">
<table class="list" id="rosters-table"><thead><tr><th>Name</th><th>People</th><th>Version</th><th>Source</th></tr></thead><tbody>
% for r in items:
<tr><td><a href="/rosters/{{q(r['id'])}}">{{r['name']}}</a></td><td>{{len(r.get('entries') or [])}}</td><td>{{r.get('version', '')}}</td><td>{{r.get('source', '')}}</td></tr>
% end
% if not items:
<tr><td colspan="4" class="muted">No rosters yet.</td></tr>
% end
</tbody></table>
</section>
<h2>New roster</h2>
% end
<section class="card">
<form method="post" action="{{'/rosters/' + q(roster['id']) if roster else '/rosters'}}" enctype="multipart/form-data" id="roster-form">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <label>Name <input name="name" required maxlength="120" value="{{roster['name'] if roster else ''}}"></label>
  <table class="list"><thead><tr><th>In roster</th><th>Person</th><th>Seat / table</th></tr></thead><tbody>
  % for p in people:
  <tr><td><input type="checkbox" name="member" value="{{p['id']}}" id="m-{{p['id']}}" {{'checked' if p['id'] in members else ''}}></td>
      <td><label for="m-{{p['id']}}">{{p['name']}}</label></td>
      <td><input name="seat_{{p['id']}}" value="{{members.get(p['id']) or ''}}" maxlength="32" class="short" aria-label="seat of {{p['name']}}"></td></tr>
  % end
  </tbody></table>
  % if not roster:
  <label>…or import a CSV <small>(header: person_id or external_id or name, and seat)</small> <input type="file" name="csv" accept=".csv,text/csv"></label>
  % end
  <button type="submit">Save roster</button>
</form>
% if roster:
<form method="post" action="/rosters/{{q(roster['id'])}}/delete" data-confirm="Delete this roster?">
  <input type="hidden" name="csrf" value="{{csrf}}"><button class="danger">Delete roster</button>
</form>
% end
</section>
