% rebase('layout.tpl')
<h1>Users</h1>
<p class="muted"><b>admin</b>: everything. <b>operator</b> (invigilator): start and stop sessions,
live view, kiosk, attendance and manual marks; no enrolment, deletion or settings.</p>
<section class="card scroll">
<table class="list" id="users-table"><thead><tr><th>User</th><th>Role</th><th>Change role</th><th>Reset password</th><th></th></tr></thead><tbody>
% for u in users:
<tr data-user="{{u['user']}}"><td>{{u['user']}}{{' (you)' if u['user'] == user else ''}}</td><td><span class="pill">{{u['role']}}</span></td>
<td><form method="post" action="/users/{{q(u['user'])}}/role" class="inline">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <select name="role" aria-label="role of {{u['user']}}">
  % for r in roles:
  <option value="{{r}}" {{'selected' if r == u['role'] else ''}}>{{r}}</option>
  % end
  </select><button type="submit" class="secondary small">Set</button></form></td>
<td><form method="post" action="/users/{{q(u['user'])}}/password" class="inline">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <input name="password" type="password" minlength="12" required autocomplete="new-password" aria-label="new password for {{u['user']}}" placeholder="new password">
  <input name="password2" type="password" minlength="12" required autocomplete="new-password" aria-label="repeat" placeholder="repeat">
  <button type="submit" class="secondary small">Reset</button></form></td>
<td><form method="post" action="/users/{{q(u['user'])}}/delete" class="inline" data-confirm="Delete the user {{u['user']}}?">
  <input type="hidden" name="csrf" value="{{csrf}}"><button type="submit" class="danger small" {{'disabled' if u['user'] == user else ''}}>Delete</button></form></td></tr>
% end
</tbody></table>
</section>
<section class="card narrow-left">
<h2>Add a user</h2>
<form method="post" action="/users" class="grid-form" id="user-form">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <label>User name <input name="user" required pattern="[A-Za-z0-9_.-]{1,32}" autocomplete="off"></label>
  <label>Role <select name="role">
  % for r in roles:
  <option value="{{r}}" {{'selected' if r == 'operator' else ''}}>{{r}}</option>
  % end
  </select></label>
  <label>Password <small>(12+ characters)</small> <input name="password" type="password" minlength="12" required autocomplete="new-password"></label>
  <label>Repeat <input name="password2" type="password" minlength="12" required autocomplete="new-password"></label>
  <button type="submit">Add user</button>
</form>
</section>
