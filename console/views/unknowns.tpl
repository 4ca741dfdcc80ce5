% rebase('layout.tpl')
<h1>Unknown faces and spoof attempts</h1>
<p class="row"><a href="/unknowns" class="{{'active' if not kind else ''}}">All</a> · <a href="/unknowns?kind=unknown">Unknown</a> · <a href="/unknowns?kind=spoof">Spoof attempts</a></p>
<div class="review-grid" id="unknowns">
% for u in items:
<figure class="card review {{u.get('kind')}}">
  <img src="/unknowns/{{q(u['id'])}}/crop.jpg" alt="{{u.get('kind')}} face" loading="lazy">
  <figcaption>{{u.get('kind')}} · {{when(u.get('at') or u.get('created_at'))}}</figcaption>
  % extra = u.get('extra') or {}
  % closest = extra.get('closest_person_id')
  % if u.get('kind') == 'spoof':
  <p class="why">Failed the liveness check (a photo or a screen?)</p>
  % elif 'threshold' in extra:
  <p class="why" data-closest="{{closest or ''}}">
  % if closest:
    Closest: <strong>{{names.get(closest, closest)}}</strong>, score <span class="score">{{'%.3f' % extra['score'] if extra.get('score') is not None else '?'}}</span>
  % else:
    Closest: nobody (no one enrolled in scope)
  % end
    · threshold <span class="threshold">{{'%.3f' % extra['threshold']}}</span>
  </p>
  % end
  <form method="post" action="/unknowns/{{q(u['id'])}}/resolve" class="assign-form">
    <input type="hidden" name="csrf" value="{{csrf}}">
    <input type="hidden" name="action" value="assign">
    % if u.get('kind') == 'spoof':
    <label class="check warn"><input type="checkbox" name="confirm_spoof" value="1" required> This face failed the liveness check: I confirm it is a live person</label>
    % end
    <select name="person_id" required aria-label="person">
      <option value="">Assign to…</option>
      % for p in people:
      <option value="{{p['id']}}">{{p['name']}}</option>
      % end
    </select>
    <button type="submit">Assign</button>
  </form>
  <form method="post" action="/unknowns/{{q(u['id'])}}/resolve">
    <input type="hidden" name="csrf" value="{{csrf}}">
    <input type="hidden" name="action" value="discard">
    <button type="submit" class="secondary">Discard</button>
  </form>
</figure>
% end
% if not items:
<p class="muted">Nothing to review.</p>
% end
</div>
