% rebase('layout.tpl')
<h1>Audit log</h1>
<p class="muted">Times in {{zone}}. Settings changes show old → new; secrets are masked.</p>
<section class="card scroll">
<table class="list" id="audit-table"><thead><tr><th>When</th><th>Who</th><th>What</th><th>Target</th><th>Details</th></tr></thead><tbody>
% for a in items:
<tr><td class="nowrap">{{when(a.get('at') or a.get('ts'))}}</td><td>{{a.get('actor')}}</td><td>{{a.get('action')}}</td><td>{{a.get('target') or ''}}</td>
<td>{{details(a.get('details'))}}</td></tr>
% end
% if not items:
<tr><td colspan="5" class="muted">No entries.</td></tr>
% end
</tbody></table>
</section>
