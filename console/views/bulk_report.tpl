% # The per-row report of a bulk enrolment (filled in by app.js while the job runs).
<section class="card" id="bulk-report">
<h2>Report{{' so far' if get('running') else ''}}</h2>
<p id="bulk-counts">{{', '.join(f'{n} {label}' for label, n in sorted(counts.items()))}}</p>
<table>
<thead><tr><th>Line</th><th>Person</th><th>Result</th><th>Details</th></tr></thead>
<tbody>
% for r in reports:
<tr data-status="{{r['status']}}"><td>{{r['line']}}</td><td>{{r['name']}} <small>({{r['person_id']}})</small></td>
<td class="{{'ok' if r['status'] in ('ok', 'already') else 'error'}}">{{r['label']}}</td><td>{{r['message']}}
% if len(r['photos']) > 1:
<ul class="photo-results">
% for ph in r['photos']:
<li>{{ph['file']}}: {{'ok' if ph.get('ok') else ph.get('message')}}</li>
% end
</ul>
% end
</td></tr>
% end
</tbody>
</table>
</section>
