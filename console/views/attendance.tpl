% rebase('layout.tpl')
<h1>Attendance</h1>
<form method="get" action="/attendance" class="card grid-form filters" id="filters">
  <label>From <input type="date" name="day_from" value="{{filters['day_from']}}"></label>
  <label>To <input type="date" name="day_to" value="{{filters['day_to']}}"></label>
  <label>Session <select name="session_id"><option value="">any</option>
  % for sid, name in sessions.items():
  <option value="{{sid}}" {{'selected' if sid == filters['session_id'] else ''}}>{{name}}</option>
  % end
  </select></label>
  <label>Room <input name="room" value="{{filters['room']}}"></label>
  <label>Person <select name="person_id"><option value="">anyone</option>
  % for pid, name in people.items():
  <option value="{{pid}}" {{'selected' if pid == filters['person_id'] else ''}}>{{name}}</option>
  % end
  </select></label>
  <label>Status <select name="status"><option value="">any</option>
  % for st in statuses:
  <option value="{{st}}" {{'selected' if st == filters['status'] else ''}}>{{st}}</option>
  % end
  </select></label>
  <button type="submit">Filter</button>
</form>
<p class="row"><span id="att-count">{{total}} record{{'' if total == 1 else 's'}}{{(', newest first: %d-%d (page %d of %d)' % (first, last, page, pages)) if rows and total > len(rows) else ''}}</span>
 · <a href="/attendance/export.csv?{{export_query}}" id="export-csv">Export CSV</a>
 · <a href="/attendance/export.csv?{{export_query}}{{'&' if export_query else ''}}bom=1" id="export-excel">Export CSV for Excel (BOM)</a>
 · <a href="/attendance/export.xlsx?{{export_query}}" id="export-xlsx">Export XLSX</a></p>
<section class="card scroll">
<table class="list" id="attendance-table"><thead><tr><th>Time</th><th>Session</th><th>Room</th><th>Name</th><th>Status</th><th>Score</th><th>By</th></tr></thead><tbody>
% for r in rows:
<tr><td>{{r[0]}}</td><td>{{r[1]}}</td><td>{{r[2]}}</td><td>{{r[4] or r[3]}}</td><td><span class="pill {{r[5]}}">{{r[5]}}</span></td><td>{{r[6]}}</td><td>{{r[7]}}</td></tr>
% end
% if not rows:
<tr><td colspan="7" class="muted">{{'No attendance for these filters.' if not total else 'No rows on this page.'}}</td></tr>
% end
</tbody></table>
</section>
% if prev or next:
<nav class="row pager" aria-label="Attendance pages">
% if prev:
<a href="{{prev}}" id="att-prev" rel="prev">&larr; Newer</a>
% end
<span class="muted">page {{page}} of {{pages}}</span>
% if next:
<a href="{{next}}" id="att-next" rel="next">Older &rarr;</a>
% end
</nav>
% end
