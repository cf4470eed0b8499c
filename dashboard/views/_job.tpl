% if job_flash:
<p class="flash" role="status" id="job-flash">{{job_flash}}</p>
% end
% shown = waiting.kind if waiting else view.status
<div class="job-head">
  <span class="badge big status-{{shown}}" id="job-status" title="{{view.status}}">{{shown}}</span>
  <span class="job-name">{{rec.job}}.{{rec.method}}</span>
  % if counts.in_progress is not None:
  <span class="muted" id="running-attempt">attempt {{counts.in_progress}}{{(' of ' + str(rec.max_attempts)) if rec.max_attempts else ''}} in progress</span>
  % elif waiting:
  <span class="muted" id="waiting">{{waiting.text}}</span>
  % end
  <span class="job-actions">
  % if 'retry' in actions:
    <form method="post" action="/jobs/{{view.id}}/retry" class="inline">
      <input type="hidden" name="csrf" value="{{csrf}}">
      <button type="submit" id="retry">Retry</button>
    </form>
  % end
  % if can_resubmit:
    <a class="button{{'' if rejected_for_params or 'retry' not in actions else ' secondary'}}" id="resubmit" href="/jobs/{{view.id}}/resubmit">Edit and resubmit</a>
  % end
  % if 'cancel' in actions:
    <form method="post" action="/jobs/{{view.id}}/cancel" class="inline" data-confirm="Cancel this job?">
      <input type="hidden" name="csrf" value="{{csrf}}">
      <button type="submit" id="cancel" class="danger">Cancel</button>
    </form>
  % end
  </span>
</div>
% if progress:
<div class="progress" id="progress">
  % if progress.fraction is not None:
  <progress max="1" value="{{progress.fraction}}">{{int(progress.fraction * 100)}} %</progress>
  <span>{{int(progress.fraction * 100)}} %</span>
  % end
  % if progress.message:
  <span class="muted">{{progress.message}}</span>
  % end
</div>
% end
% if rejected_for_params and can_resubmit:
<p class="notice" id="rejected-note">Rejected for its params: retrying it as it is would be rejected again. <a href="/jobs/{{view.id}}/resubmit">Edit the params and resubmit it</a> as a new job.</p>
% end
% if source or resubmissions:
<div class="links" id="job-links">
  % if source:
  <p id="resubmitted-from">Resubmitted from <a href="/jobs/{{source}}"><code>{{source}}</code></a>, with edited params.</p>
  % end
  % if resubmissions:
  <p id="resubmitted-as">Resubmitted as
  % for i, new_id in enumerate(resubmissions):
  {{', ' if i else ''}}<a href="/jobs/{{new_id}}"><code>{{new_id}}</code></a>
  % end
  </p>
  % end
</div>
% end
% if rec.unique:
<p id="unique-key">Unique key <code>{{rec.unique.key}}</code> (until {{rec.unique.until}}, for {{rec.unique.for_seconds}} s): {{'holds the lock' if unique_held else 'does not hold the lock'}}.</p>
% end
% if rec.error:
% earlier = view.status in ('pending', 'running')
<section class="error-box{{' earlier' if earlier else ''}}">
  % if earlier:
  <p class="muted">The last attempt failed:</p>
  % end
  <p class="error"><strong>{{rec.error.type}}</strong>: {{rec.error.message}}</p>
  % if rec.error.traceback:
  <details id="tb-record"><summary>Traceback</summary><pre class="tb">{{rec.error.traceback}}</pre></details>
  % end
</section>
% end
<section class="record">
<dl class="fields">
  % if waiting:
  <dt>Status</dt><dd id="status-line">pending, {{waiting.text}}</dd>
  % elif view.status == 'pending':
  <dt>Status</dt><dd id="status-line">pending, ready: a runner takes it as soon as one is free</dd>
  % else:
  <dt>Status</dt><dd id="status-line">{{view.status}}{{(' — ' + rec.reason) if rec.reason else ''}}</dd>
  % end
  <dt>Job</dt><dd>{{rec.job}}.{{rec.method}}</dd>
  <dt>Priority</dt><dd>{{rec.priority}}</dd>
  <dt>Created</dt><dd>{{fmt.fmt_time(rec.created_at)}}</dd>
  <dt>Submitted by</dt><dd>{{rec.submitted_by or '-'}}</dd>
  <dt>Attempts</dt><dd id="attempts-used">{{counts.text(rec)}}</dd>
  % if rec.not_before:
  <dt>Not before</dt><dd>{{fmt.fmt_time(rec.not_before)}}</dd>
  % end
  % if rec.next_attempt_at and view.status == 'pending':
  <dt>Next attempt</dt><dd>{{fmt.fmt_time(rec.next_attempt_at)}}</dd>
  % end
  % if rec.timeout_seconds:
  <dt>Timeout</dt><dd>{{fmt.fmt_duration(rec.timeout_seconds)}}</dd>
  % end
  % if rec.original_name:
  <dt>Dropped as</dt><dd><code>{{rec.original_name}}</code></dd>
  % end
  <dt>Revision</dt><dd>{{rec.revision}}</dd>
</dl>
<div class="values">
  <h3>Params</h3>
  <pre class="json" id="params">{{fmt.pretty_json(rec.params)}}</pre>
  % if view.status == 'completed':
  <h3>Result</h3>
  <pre class="json" id="result">{{fmt.pretty_json(rec.result)}}</pre>
  % end
</div>
</section>
<section>
<h2>Attempts</h2>
% if not rec.attempts and counts.in_progress is None:
<p class="empty">No attempt yet.</p>
% else:
<div class="table-wrap">
<table class="grid attempts">
<thead><tr><th>#</th><th>Outcome</th><th>Runner</th><th>Host</th><th>PID</th><th>Started</th><th>Finished</th><th class="num">Duration</th><th class="num">Exit</th><th>Error</th></tr></thead>
<tbody>
% for a in rec.attempts:
<tr>
  <td>{{a.number}}</td>
  <td><span class="badge outcome-{{a.outcome.value}}">{{a.outcome.value}}</span></td>
  <td><code>{{a.runner}}</code></td>
  <td>{{a.host}}</td>
  <td>{{a.pid if a.pid is not None else '-'}}</td>
  <td>{{fmt.fmt_time(a.started_at)}}</td>
  <td>{{fmt.fmt_time(a.finished_at)}}</td>
  <td class="num">{{fmt.fmt_duration(a.duration_seconds)}}</td>
  <td class="num">{{a.exit_code if a.exit_code is not None else ('signal ' + str(a.signal) if a.signal else '-')}}</td>
  <td class="err">
  % if a.error:
    {{a.error.type}}: {{a.error.message}}
    % if a.error.traceback:
    <details id="tb-{{a.number}}"><summary>Traceback</summary><pre class="tb">{{a.error.traceback}}</pre></details>
    % end
  % end
  </td>
</tr>
% end
% if counts.in_progress is not None:
<tr class="current" id="current-attempt">
  <td>{{counts.in_progress}}</td>
  <td><span class="badge status-running">running</span></td>
  <td><code>{{claim.runner if claim else '-'}}</code></td>
  <td>{{running_host or '-'}}</td>
  <td>{{running.pid if running and running.pid is not None else '-'}}</td>
  <td>{{fmt.fmt_iso(running.started_at) if running else '-'}}</td>
  <td>-</td>
  <td class="num">{{fmt.fmt_duration(running.running_seconds) if running else '-'}}</td>
  <td class="num">-</td>
  <td class="muted">in progress</td>
</tr>
% end
</tbody>
</table>
</div>
% end
</section>
<section>
<h2>History</h2>
% if not rec.history:
<p class="empty">Nothing recorded.</p>
% else:
<div class="table-wrap">
<table class="grid history">
<thead><tr><th>When</th><th>Action</th><th>By</th><th>Via</th><th>Note</th></tr></thead>
<tbody>
% for h in rec.history:
<tr><td class="when">{{fmt.fmt_time(h.at)}}</td><td>{{h.action}}</td><td>{{h.by or '-'}}</td><td>{{h.via or '-'}}</td><td class="note">{{h.note or ''}}</td></tr>
% end
</tbody>
</table>
</div>
% end
</section>
