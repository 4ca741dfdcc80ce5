% rebase('layout.tpl')
<h1>Privacy</h1>
% if not info:
<p class="muted">The firmware is not running: nothing to show.</p>
% else:
% clock = info.get('clock') or {}
<section class="card" id="clock">
<h2>Clock</h2>
<p class="{{'' if clock.get('synced') else 'flash warn'}}">{{'Synchronised' if clock.get('synced') else 'NOT synchronised'}} (source: {{clock.get('source')}}). Newest time recorded: {{clock.get('lower_bound') or '—'}}{{'; the system clock is %.0f s behind it' % clock['behind_s'] if clock.get('behind_s') else ''}}.</p>
</section>
<section class="card" id="held">
<h2>What this device holds, and until when</h2>
<table class="list"><thead><tr><th>What</th><th>Where (data dir)</th><th>Held</th><th>Kept until</th></tr></thead><tbody>
% for row in info['held']:
<tr><td>{{row['what']}}</td><td><code>{{row['where']}}</code></td><td>{{row['count']}}</td><td>{{row['until']}}</td></tr>
% end
</tbody></table>
<p class="muted">Last retention sweep: {{info.get('last_sweep_at') or 'never'}}. The sweep runs once a day while the clock is synchronised.</p>
<form method="post" action="/privacy/sweep"><input type="hidden" name="csrf" value="{{csrf}}"><button type="submit" class="secondary">Run the retention sweep now</button></form>
</section>
<section class="card" id="review">
<h2>Face templates to review (on no roster for {{info['review_absent_days']}} days)</h2>
<table class="list"><thead><tr><th>Person</th><th>On no roster since</th><th>Flagged</th></tr></thead><tbody>
% for r in info['review']:
<tr><td><a href="/people/{{q(r['person_id'])}}">{{r['name']}}</a></td><td>{{r['off_roster_since'] or 'since the next sweep'}}</td><td>{{'REVIEW' if r['flagged'] else 'not yet'}}</td></tr>
% end
% if not info['review']:
<tr><td colspan="3" class="muted">Everyone with face data is on a roster.</td></tr>
% end
</tbody></table>
</section>
% end
<section class="card" id="erasures">
<h2>Erasures</h2>
<table class="list"><thead><tr><th>When</th><th>Person</th><th>By</th><th>Why</th><th>Deleted</th></tr></thead><tbody>
% for e in erasures:
<tr><td>{{e['at']}}</td><td>{{e['person_id']}}</td><td>{{e['by']}}</td><td>{{e['reason']}}{{' (full)' if e['full'] else ''}}</td><td>{{', '.join('%s %s' % (v, k.replace('_', ' ')) for k, v in e['counts'].items() if v) or 'nothing held'}}</td></tr>
% end
% if not erasures:
<tr><td colspan="5" class="muted">No erasures yet.</td></tr>
% end
</tbody></table>
</section>
