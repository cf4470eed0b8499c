% if not ov.index.ready:
<p class="notice">Reading job files: {{ov.index.to_read}} left. Charts, rates and durations are partial until then.</p>
% end
<section class="cards" aria-label="Jobs per status">
  % for status in statuses:
  % if status == 'pending':
  <a class="card status-pending" href="/jobs?status=pending" id="count-pending" title="pending jobs that are due: a runner takes them as soon as one is free">
    <span class="n">{{ov.ready}}</span>
    <span class="label">pending</span>
  </a>
  <a class="card status-scheduled" href="/jobs?status=pending" id="count-scheduled" title="pending jobs not due yet: delayed, or waiting for their next attempt">
    <span class="n">{{ov.scheduled}}</span>
    <span class="label">scheduled</span>
  </a>
  % else:
  <a class="card status-{{status}}" href="/jobs?status={{status}}" id="count-{{status}}">
    <span class="n">{{ov.counts[status]}}</span>
    <span class="label">{{status}}</span>
  </a>
  % end
  % end
  % if ov.corrupt:
  <span class="card status-corrupt" title="files quarantined in corrupt/: not jobs at all">
    <span class="n">{{ov.corrupt}}</span>
    <span class="label">corrupt files</span>
  </span>
  % end
</section>
<section class="kpis">
  <div><span class="k">Success, last hour</span><span class="v">{{fmt.fmt_rate(ov.success_last_hour)}}</span></div>
  <div><span class="k">Success, last 24 h</span><span class="v">{{fmt.fmt_rate(ov.success_last_day)}}</span></div>
  <div><span class="k">Success, all on disk</span><span class="v">{{fmt.fmt_rate(ov.success_all)}}</span></div>
  <div title="the due pending job waiting longest (scheduled jobs and retries not due yet do not count)"><span class="k">Oldest pending (due)</span><span class="v" id="oldest-pending">
  % if ov.oldest_pending_id:
    <a href="/jobs/{{ov.oldest_pending_id}}">{{fmt.fmt_age(ov.oldest_pending_age)}}</a>
  % else:
    none
  % end
  </span></div>
  <div><span class="k">Running attempts</span><span class="v">{{ov.running_attempts}}</span></div>
</section>
<section class="charts">
  <div>
    <h2>Last hour, per minute</h2>
    % include('_chart.tpl', chart=minute_chart, caption='Jobs finished per minute over the last hour')
  </div>
  <div>
    <h2>Last 24 hours, per hour</h2>
    % include('_chart.tpl', chart=hour_chart, caption='Jobs finished per hour over the last day')
  </div>
</section>
% include('_holds.tpl', holds=holds)
<section>
<h2>Runners</h2>
% if not ov.runners:
<p class="empty">No runner is alive. Start one with <code>jobspool runner</code> (or <code>jobspool up</code>).</p>
% else:
<div class="table-wrap">
<table class="grid runners">
<thead><tr><th>Runner</th><th>Host</th><th>PID</th><th>Heartbeat</th><th>Running jobs</th></tr></thead>
<tbody>
% for r in ov.runners:
<tr class="{{'stale' if r.stale else ''}}">
  <td><code>{{r.runner}}</code></td>
  <td>{{r.host}}</td>
  <td>{{r.pid if r.pid is not None else '-'}}</td>
  <td>{{fmt.fmt_ago(r.heartbeat_age)}}{{' (stale)' if r.stale else ''}}</td>
  <td>
  % if not r.jobs:
    idle
  % end
  % for j in r.jobs:
    <div><a href="/jobs/{{j.id}}">{{j.name}}</a> <span class="muted">attempt {{j.attempt}}, pid {{j.pid}}, {{fmt.fmt_duration(j.running_seconds)}}</span></div>
  % end
  </td>
</tr>
% end
</tbody>
</table>
</div>
% end
</section>
<section>
<h2>Per job</h2>
% if not ov.per_name:
<p class="empty">No finished jobs yet.</p>
% else:
<div class="table-wrap">
<table class="grid per-job">
<thead><tr><th>Job</th><th class="num">Completed</th><th class="num">Failed</th><th class="num">Cancelled</th><th class="num">Success</th><th class="num">p50</th><th class="num">p95</th></tr></thead>
<tbody>
% for s in ov.per_name:
<tr>
  <td><a href="/jobs?job={{s.name.split('.', 1)[0]}}">{{s.name}}</a></td>
  <td class="num">{{s.completed}}</td>
  <td class="num">{{s.failed}}</td>
  <td class="num">{{s.cancelled}}</td>
  <td class="num">{{fmt.fmt_rate(s.success_rate)}}</td>
  <td class="num">{{fmt.fmt_duration(s.p50)}}</td>
  <td class="num">{{fmt.fmt_duration(s.p95)}}</td>
</tr>
% end
</tbody>
</table>
</div>
% end
</section>
% if ov.retention is not None:
<section id="retention" aria-label="Retention">
<h2>Retention</h2>
<p class="muted">Finished jobs are removed with their logs once older than this{{' (moved to the archive)' if ov.retention.archived else ''}}.</p>
<div class="table-wrap">
<table class="grid retention">
<thead><tr><th>Status</th><th>Kept for</th><th class="num">Last purge removed</th><th class="num">Removed in all</th></tr></thead>
<tbody>
% for status, kept in ov.retention.policy.items():
<tr id="retention-{{status}}">
  <td>{{status}}</td>
  <td>{{'forever' if kept == 'keep' else kept}}</td>
  <td class="num">{{ov.retention.removed(status)}}</td>
  <td class="num">{{ov.retention.total(status)}}</td>
</tr>
% end
</tbody>
</table>
</div>
<p id="last-purge">
% if ov.retention.last is not None:
Last purge: {{fmt.fmt_time(ov.retention.last.at)}} by <code>{{ov.retention.last.by}}</code>.
% else:
No purge has removed anything yet.
% end
</p>
</section>
% end
