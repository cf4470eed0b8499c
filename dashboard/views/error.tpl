% rebase('layout.tpl', title=title)
<section class="error-page">
<h1>{{code}}</h1>
<p class="error-message">{{message}}</p>
<p><a href="/">Back to the overview</a></p>
</section>
