% rebase('layout.tpl')
<h1>My account</h1>
<section class="card narrow-left">
<p>Logged in as <b id="me">{{user}}</b> ({{role}}).</p>
<h2>Change password</h2>
<form method="post" action="/settings/password" id="form-password">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <label>Current password <input name="old_password" type="password" required autocomplete="current-password"></label>
  <label>New password <small>(12+ characters)</small> <input name="new_password" type="password" required minlength="12" autocomplete="new-password"></label>
  <label>Repeat <input name="new_password2" type="password" required minlength="12" autocomplete="new-password"></label>
  <button type="submit">Change password</button>
</form>
</section>
