% rebase('layout.tpl', title=title)
<section class="login">
<h1>Log in</h1>
<p>This dashboard needs its access token.</p>
% if error:
<p class="error" role="alert">{{error}}</p>
% end
<form method="post" action="/login">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <input type="hidden" name="next" value="{{next}}">
  <label for="token">Token</label>
  <input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
  <button type="submit">Log in</button>
</form>
</section>
