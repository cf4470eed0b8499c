% rebase('layout.tpl', title=title)
<h1>Overview</h1>
<div class="live" data-live="/partials/overview" data-interval="3000">
% include('_overview.tpl')
</div>
