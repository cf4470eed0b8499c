% rebase('layout.tpl', title=title)
<h1>Schedules</h1>
% if not schedules:
<p class="muted" id="no-schedules">No schedules in allowed_jobs.yaml (see docs/SCHEDULES.md).</p>
% else:
<table class="schedules" id="schedules">
  <thead>
    <tr><th>Name</th><th>Job</th><th>When</th><th>Last run</th><th>Last job</th><th>Next run</th><th></th></tr>
  </thead>
  <tbody>
  % for v in schedules:
    % row = v.to_public()
    <tr class="schedule-row" id="schedule-{{v.name}}">
      <td class="name">{{v.name}}</td>
      <td>{{v.spec.job}}.{{v.spec.method}}</td>
      <td>{{when(v.spec)}}</td>
      <td class="last">
      % if v.last_tick:
        {{row['last_run_local']}}<br><span class="muted">{{row['last_run_utc']}}</span>
      % else:
        <span class="muted">never</span>
      % end
      </td>
      <td class="last-job">
      % if v.last_job:
        <a href="/jobs/{{v.last_job}}">{{v.last_job}}</a> <span class="status">{{v.last_status or 'gone'}}</span>
      % end
      </td>
      <td class="next">
      % if v.next_tick:
        {{row['next_run_local']}}<br><span class="muted">{{row['next_run_utc']}}</span>
      % end
      </td>
      <td>
        <form method="post" action="/schedules/{{v.name}}/run" class="inline">
          <input type="hidden" name="csrf" value="{{csrf}}">
          <button type="submit" class="run-now">Run now</button>
        </form>
      </td>
    </tr>
  % end
  </tbody>
</table>
% end
