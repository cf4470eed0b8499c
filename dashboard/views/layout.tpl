<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf-token" content="{{csrf}}">
<title>{{title}} · jobspool</title>
<link rel="stylesheet" href="/static/app.css">
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<script src="/static/app.js" defer></script>
</head>
<body>
<header class="top">
  <a class="brand" href="/">jobspool</a>
  <nav>
    <a href="/" class="{{'on' if nav == 'overview' else ''}}">Overview</a>
    <a href="/jobs" class="{{'on' if nav == 'jobs' else ''}}">Jobs</a>
    <a href="/schedules" class="{{'on' if nav == 'schedules' else ''}}">Schedules</a>
    <a href="/submit" class="{{'on' if nav == 'submit' else ''}}">Submit</a>
  </nav>
  <span class="spool" title="spool directory">{{spool}}</span>
  <span class="live-state" id="live-state" aria-live="polite"></span>
  % if logged_in:
  <form method="post" action="/logout" class="inline">
    <input type="hidden" name="csrf" value="{{csrf}}">
    <button type="submit" class="link">Log out</button>
  </form>
  % end
</header>
<main>
% if flash:
<p class="flash" role="status">{{flash}}</p>
% end
{{!base}}
</main>
</body>
</html>
