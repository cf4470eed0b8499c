% rebase('layout.tpl', title=title)
<h1>Job <code id="job-id">{{view.id}}</code></h1>
<div class="live" id="job-detail" data-live="{{fragment_url}}" data-interval="1000">
% include('_job.tpl')
</div>
<section class="log-section">
  <h2>Log <a class="small" href="/jobs/{{view.id}}/log">raw</a></h2>
  % ran = active or view.record.attempts
  % done_text = "This attempt wrote no output." if ran else "No attempt ran, so there is no output."
  % if not chunk.text and chunk.offset == 0:
  <p class="empty" id="log-empty" data-done="{{done_text}}">{{'No output yet.' if active else done_text}}</p>
  % elif chunk.cut and chunk.offset > 0:
  <p class="muted">Showing the last {{tail_bytes // 1024}} KB; the raw log has everything.</p>
  % end
  <pre id="log" class="log" data-log-src="/api/jobs/{{view.id}}/log" data-offset="{{chunk.next_offset}}" data-follow="{{'1' if active else '0'}}">{{chunk.text}}</pre>
</section>
