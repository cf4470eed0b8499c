% rebase('layout.tpl', title=title)
<h1>Jobs</h1>
<form class="filters" method="get" action="/jobs" id="filters">
  <label>Status
    <select name="status">
      <option value="">all</option>
      % for s in statuses:
      <option value="{{s}}" {{'selected' if query.status and query.status.value == s else ''}}>{{s}} ({{counts[s]}})</option>
      % end
    </select>
  </label>
  <label>Job
    <select name="job">
      <option value="">any</option>
      % for name in job_names:
      <option value="{{name}}" {{'selected' if query.job == name else ''}}>{{name}}</option>
      % end
    </select>
  </label>
  <label class="grow">Search
    <input type="search" name="q" value="{{query.q}}" placeholder="id, params or error text">
  </label>
  <label>Sort
    <select name="sort">
      % for s in sorts:
      <option value="{{s}}" {{'selected' if query.sort == s else ''}}>{{s}}</option>
      % end
    </select>
  </label>
  <label>Per page
    <select name="per_page">
      % for n in per_pages:
      <option value="{{n}}" {{'selected' if query.per_page == n else ''}}>{{n}}</option>
      % end
    </select>
  </label>
  <button type="submit">Filter</button>
</form>
<div class="live" id="job-list" data-live="{{fragment_url}}" data-interval="3000">
% include('_jobs.tpl')
</div>
