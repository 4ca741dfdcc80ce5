% rebase('layout.tpl')
<section class="narrow card">
<h1>Log in</h1>
% if error:
<p class="flash error" role="alert">{{error}}</p>
% end
<form method="post" action="/login">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <input type="hidden" name="next" value="{{next_url}}">
  <label>User <input name="user" autocomplete="username" required value="{{user_name}}"></label>
  <label>Password <input name="password" type="password" autocomplete="current-password" required></label>
  <button type="submit">Log in</button>
</form>
</section>
