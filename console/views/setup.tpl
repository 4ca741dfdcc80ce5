% rebase('layout.tpl')
<section class="narrow card">
<h1>Welcome: set up this Rollcall</h1>
<p>No admin account exists yet. Create one to claim this device.</p>
% if error:
<p class="flash error" role="alert">{{error}}</p>
% end
<form method="post" action="/setup">
  <input type="hidden" name="csrf" value="{{csrf}}">
  % if need_code:
  <label>Setup code <small>(printed by provisioning, in the secrets directory's <code>setup-code</code> file)</small>
    <input name="setup_code" required autocomplete="off"></label>
  % end
  <label>Admin user name <input name="user" value="{{user_name}}" required pattern="[A-Za-z0-9_.-]{1,32}" autocomplete="username"></label>
  <label>Password <small>(at least 12 characters, not a common password)</small>
    <input name="password" type="password" required minlength="12" autocomplete="new-password"></label>
  <label>Repeat password <input name="password2" type="password" required minlength="12" autocomplete="new-password"></label>
  <button type="submit">Create admin account</button>
</form>
</section>
