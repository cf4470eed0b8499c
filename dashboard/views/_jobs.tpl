<div class="list-head">
  <p class="total"><span id="total">{{result.total}}</span> job{{'' if result.total == 1 else 's'}}
  % if query.q:
  matching “{{query.q}}”
  % end
  </p>
  % if result.partial:
  <p class="notice">Still reading job files: this result may be incomplete.</p>
  % end
  % if query.status and query.status.value == 'failed' and result.total:
  <form method="post" action="/actions/retry-failed" class="bulk" data-confirm="Retry every failed job matching this filter (up to 500 per click)?">
    <input type="hidden" name="csrf" value="{{csrf}}">
    <input type="hidden" name="job" value="{{query.job}}">
    <input type="hidden" name="q" value="{{query.q}}">
    <button type="submit">Retry the matching failed jobs ({{result.total}})</button>
  </form>
  % end
</div>
% if not rows:
<p class="empty">No jobs here.</p>
% else:
<div class="table-wrap">
<table class="grid jobs">
<thead><tr><th>Id</th><th>Status</th><th>Job</th><th class="num">Attempts</th><th>Created (UTC)</th><th>Finished (UTC)</th><th class="num">Duration</th><th>Error</th></tr></thead>
<tbody>
% for j in rows:
<tr class="job-row" data-id="{{j['id']}}">
  <td class="id"><a href="/jobs/{{j['id']}}"><code>{{j['id']}}</code></a></td>
  <td class="state"><span class="badge status-{{j['shown']}}" title="{{j['due_title'] or j['status']}}">{{j['shown']}}</span>
  % if j['due']:
  <span class="due" title="{{j['due_title']}}">{{j['due']}}</span>
  % end
  </td>
  <td>{{j['name']}}</td>
  <td class="num">{{j['attempts']}}</td>
  <td class="when">{{j['created']}}</td>
  <td class="when">{{j['finished']}}</td>
  <td class="num">{{j['duration']}}</td>
  <td class="{{j['error_class']}}">{{j['error']}}</td>
</tr>
% end
</tbody>
</table>
</div>
% end
% if result.pages > 1:
<nav class="pages" aria-label="pages">
  % if query.page > 1:
  <a href="{{link(page=1)}}">« first</a>
  <a href="{{link(page=query.page - 1)}}" rel="prev">‹ previous</a>
  % end
  <span>page {{query.page}} of {{result.pages}}</span>
  % if query.page < result.pages:
  <a href="{{link(page=query.page + 1)}}" rel="next">next ›</a>
  <a href="{{link(page=result.pages)}}">last »</a>
  % end
</nav>
% end
