% rebase('layout.tpl')
<h1>Reports</h1>
<form method="get" action="/reports" class="card grid-form filters no-print" id="report-form">
  <label>Roster <select name="roster_id" id="report-roster">
  % for r in rosters:
  <option value="{{r['id']}}" {{'selected' if r['id'] == form['roster_id'] else ''}}>{{r['name']}}</option>
  % end
  </select></label>
  <label>From <input type="date" name="day_from" value="{{form['day_from']}}"></label>
  <label>To <input type="date" name="day_to" value="{{form['day_to']}}"></label>
  <label>Flag below (%) <input type="number" name="below" min="0" max="100" step="1" value="{{'%g' % form['below']}}"></label>
  <button type="submit">Show</button>
</form>
% if not rosters:
<p class="muted">No rosters yet: create one under Rosters first.</p>
% elif report:
<section class="card" id="report">
<h2>{{report['roster']['name']}} · {{form['day_from']}} – {{form['day_to']}}</h2>
<p class="row" id="report-totals">{{len(report['sessions'])}} completed session{{'' if len(report['sessions']) == 1 else 's'}} ·
 attendance {{pct(report['rate']) or '–'}}{{'%' if report['rate'] is not None else ''}} ·
% for st in statuses:
 <span class="pill {{st}}">{{st}}: {{report['totals'][st]}}</span>
% end
 · <b id="report-flagged">{{report['flagged']}}</b> below {{'%g' % form['below']}}%</p>
<p class="row no-print">
 <a href="/reports/export.csv?{{export_query}}" id="report-csv">Export CSV</a> ·
 <a href="/reports/export.csv?{{export_query}}&bom=1">CSV for Excel (BOM)</a> ·
 <a href="/reports/export.xlsx?{{export_query}}" id="report-xlsx">Export XLSX</a> ·
 <span class="muted">print this page for a paper copy</span></p>
<figure class="chart-box" id="report-chart">{{!chart}}
<figcaption class="muted">Attendance rate per session ((present + late) / (present + late + absent); excused counts neither way). Dashed line: {{'%g' % form['below']}}%.</figcaption></figure>
<h3>People</h3>
<table class="list" id="report-people"><thead><tr><th>Seat</th><th>Student no.</th><th>Name</th><th>Sessions</th>
% for st in statuses:
<th>{{st}}</th>
% end
<th>Rate</th></tr></thead><tbody>
% for p in report['people']:
<tr class="{{'flagged' if p['flagged'] else ''}}" data-person="{{p['person_id']}}"><td>{{p.get('seat') or ''}}</td><td>{{p.get('external_id') or ''}}</td><td>{{p.get('name') or p['person_id']}}</td><td>{{p['sessions']}}</td>
% for st in statuses:
<td>{{p['counts'][st]}}</td>
% end
<td>{{pct(p['rate']) + '%' if p['rate'] is not None else '–'}}{{!' <span class="pill absent">below</span>' if p['flagged'] else ''}}</td></tr>
% end
% if not report['people']:
<tr><td colspan="{{5 + len(statuses)}}" class="muted">No completed sessions of this roster in this range.</td></tr>
% end
</tbody></table>
<h3>Sessions</h3>
<table class="list" id="report-sessions"><thead><tr><th>Day</th><th>Session</th><th>Room</th>
% for st in statuses:
<th>{{st}}</th>
% end
<th>Rate</th></tr></thead><tbody>
% for s in report['sessions']:
<tr><td>{{s.get('day') or ''}}</td><td><a href="/sessions/{{q(s['session_id'])}}">{{s.get('name') or s['session_id']}}</a></td><td>{{s.get('room') or ''}}</td>
% for st in statuses:
<td>{{s['counts'][st]}}</td>
% end
<td>{{pct(s['rate']) + '%' if s['rate'] is not None else '–'}}</td></tr>
% end
</tbody></table>
</section>
% end
