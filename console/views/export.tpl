% rebase('layout.tpl')
% p = data['person']
<h1>Data held about {{p['name']}}</h1>
<p class="muted">Subject access export from this device. <a href="/people/{{q(p['id'])}}/export?format=json">Download as JSON</a> (includes the face templates as numbers). Print this page for a paper copy.</p>
<section class="card" id="sar-person">
<h2>Person</h2>
<dl class="health">
<div><dt>Id</dt><dd>{{p['id']}}</dd></div>
<div><dt>Name</dt><dd>{{p['name']}}</dd></div>
<div><dt>External id</dt><dd>{{p.get('external_id') or '—'}}</dd></div>
<div><dt>Source</dt><dd>{{p.get('source')}}</dd></div>
<div><dt>Created</dt><dd>{{p.get('created_at') or '—'}}</dd></div>
% c = p.get('consent') or {}
<div><dt>Legal basis</dt><dd>{{labels.get(c.get('basis'), 'none recorded')}}{{(', recorded by %s at %s' % (c.get('recorded_by'), c.get('recorded_at'))) if c else ''}}{{(' — withdrawn at %s' % c['withdrawn_at']) if c.get('withdrawn_at') else ''}}</dd></div>
<div><dt>Face data erased</dt><dd>{{p.get('biometrics_erased_at') or 'no'}}</dd></div>
</dl>
</section>
<section class="card" id="sar-faces">
<h2>Face data: {{len(data['templates'])}} templates, {{len(data['photos'])}} photos</h2>
<div class="thumbs">
% for uri in photos:
<img src="{{uri}}" alt="enrolment photo">
% end
</div>
<table class="list"><thead><tr><th>Template</th><th>Model</th><th>Created</th></tr></thead><tbody>
% for t in data['templates']:
<tr><td>{{t.get('id')}}</td><td>{{t.get('model_id')}}</td><td>{{t.get('created_at') or '—'}}</td></tr>
% end
</tbody></table>
</section>
<section class="card" id="sar-attendance">
<h2>Attendance records ({{len(data['attendance'])}})</h2>
<table class="list"><thead><tr><th>Day</th><th>Session</th><th>Status</th><th>Captured</th><th>Clock synchronised</th></tr></thead><tbody>
% for a in data['attendance']:
<tr><td>{{a['day']}}</td><td>{{a.get('session_id') or 'open door'}}</td><td>{{a['status']}}</td><td>{{a['captured_at']}}</td><td>{{'no' if a.get('clock_synced') is False else 'yes'}}</td></tr>
% end
</tbody></table>
</section>
<section class="card" id="sar-other">
<h2>Rosters, faces assigned, erasures, audit</h2>
<p>Rosters: {{', '.join('%s (seat %s)' % (r['name'], r['seat'] or '—') for r in data['rosters']) or 'none'}}</p>
<p>Unknown faces assigned to them: {{len(data['unknown_faces_assigned'])}}</p>
<ul>
% for e in data['erasures']:
<li>Erased {{e['at']}} by {{e['by']}} ({{e['reason']}}{{', full' if e['full'] else ''}}): {{', '.join('%s %s' % (v, k) for k, v in e['counts'].items() if v) or 'nothing held'}}</li>
% end
</ul>
<table class="list"><thead><tr><th>When</th><th>Who</th><th>What</th></tr></thead><tbody>
% for a in data['audit']:
<tr><td>{{a['at']}}</td><td>{{a['actor']}}</td><td>{{a['action']}}</td></tr>
% end
</tbody></table>
</section>
