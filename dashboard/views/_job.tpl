<div class="job-head">
  <span class="badge big status-{{view.status}}" id="job-status">{{view.status}}</span>
  <span class="job-name">{{rec.job}}.{{rec.method}}</span>
  % attempt = fmt.running_attempt(view)
  % if attempt:
  <span class="muted" id="running-attempt">attempt {{attempt}} running</span>
  % end
  <span class="job-actions">
  % if 'retry' in actions:
    <form method="post" action="/jobs/{{view.id}}/retry" class="inline">
      <input type="hidden" name="csrf" value="{{csrf}}">
      <button type="submit" id="retry">Retry</button>
    </form>
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
% if rec.error:
<section class="error-box">
  <p class="error"><strong>{{rec.error.type}}</strong>: {{rec.error.message}}</p>
  % if rec.error.traceback:
  <details id="tb-record"><summary>Traceback</summary><pre class="tb">{{rec.error.traceback}}</pre></details>
  % end
</section>
% end
<section class="record">
<dl class="fields">
  <dt>Status</dt><dd>{{view.status}}{{(' — ' + rec.reason) if rec.reason else ''}}</dd>
  <dt>Job</dt><dd>{{rec.job}}.{{rec.method}}</dd>
  <dt>Priority</dt><dd>{{rec.priority}}</dd>
  <dt>Created</dt><dd>{{fmt.fmt_time(rec.created_at)}}</dd>
  <dt>Submitted by</dt><dd>{{rec.submitted_by or '-'}}</dd>
  % limit = f" of {rec.max_attempts}" if rec.max_attempts else ""
  % if rec.attempt_base:
  <dt>Attempts</dt><dd>{{len(rec.attempts)}} recorded; {{rec.attempts_used}}{{limit}} counted since the last retry</dd>
  % else:
  <dt>Attempts</dt><dd>{{rec.attempts_used}}{{limit}} used</dd>
  % end
  % if rec.not_before:
  <dt>Not before</dt><dd>{{fmt.fmt_time(rec.not_before)}}</dd>
  % end
  % if rec.next_attempt_at:
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
% if not rec.attempts:
<p class="empty">No attempt yet.</p>
% else:
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
</tbody>
</table>
% end
</section>
<section>
<h2>History</h2>
% if not rec.history:
<p class="empty">Nothing recorded.</p>
% else:
<table class="grid history">
<thead><tr><th>When</th><th>Action</th><th>By</th><th>Via</th><th>Note</th></tr></thead>
<tbody>
% for h in rec.history:
<tr><td>{{fmt.fmt_time(h.at)}}</td><td>{{h.action}}</td><td>{{h.by or '-'}}</td><td>{{h.via or '-'}}</td><td>{{h.note or ''}}</td></tr>
% end
</tbody>
</table>
% end
</section>
