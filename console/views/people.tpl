% rebase('layout.tpl')
<h1>People</h1>
<div class="two-col">
<section class="card">
<form method="get" action="/people" class="row">
  <input name="q" value="{{search}}" placeholder="Search by name" aria-label="Search by name">
  <button type="submit" class="secondary">Search</button>
</form>
<table class="list" id="people-table">
<thead><tr><th>Name</th><th>External id</th><th>Photos</th></tr></thead>
<tbody>
% for p in people:
<tr><td><a href="/people/{{q(p['id'])}}">{{p.get('name')}}</a></td><td>{{p.get('external_id') or ''}}</td><td>{{p.get('photo_count', '')}}</td></tr>
% end
% if not people:
<tr><td colspan="3" class="muted">Nobody yet.</td></tr>
% end
</tbody></table>
</section>
<section class="card">
<h2>Add a person</h2>
<form method="post" action="/people">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <label>Name <input name="name" required maxlength="120"></label>
  <label>External id <small>(student / staff number, optional)</small> <input name="external_id" maxlength="64"></label>
  <label>Legal basis for keeping their face data <small>(recorded with your name and the time)</small>
  <select name="basis" required>
    % if not default_basis:
    <option value="" selected disabled>choose…</option>
    % end
    % for value, label in (("consent", "Consent (signed form)"), ("contract", "Contract (employment)"), ("legal_obligation", "Legal obligation")):
    <option value="{{value}}" {{'selected' if value == default_basis else ''}}>{{label}}</option>
    % end
  </select></label>
  <button type="submit">Add</button>
</form>
<p><a href="/people/bulk" id="bulk-link">Enrol many people at once (CSV + zip of photos)</a></p>
</section>
</div>
