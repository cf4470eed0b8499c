% rebase('layout.tpl', title=title)
<h1>Job <code id="job-id">{{view.id}}</code></h1>
<div class="live" id="job-detail" data-live="/partials/job/{{view.id}}" data-interval="1000">
% include('_job.tpl')
</div>
<section class="log-section">
  <h2>Log <a class="small" href="/jobs/{{view.id}}/log">raw</a></h2>
  % if not chunk.exists:
  <p class="empty" id="log-empty">No output yet.</p>
  % elif chunk.cut and chunk.offset > 0:
  <p class="muted">Showing the last {{tail_bytes // 1024}} KB; the raw log has everything.</p>
  % end
  <pre id="log" class="log" data-log-src="/api/jobs/{{view.id}}/log" data-offset="{{chunk.next_offset}}" data-follow="{{'1' if active else '0'}}">{{chunk.text}}</pre>
</section>
