% rebase('layout.tpl', title=title)
<h1>Submit a job</h1>
% if errors.get(''):
<p class="error" role="alert" id="error-form">{{errors['']}}</p>
% end
% if not jobs:
<p class="empty">The allow-list in allowed_jobs.yaml names no job yet.</p>
% else:
<form method="post" action="/submit" class="submit-form" id="submit-form">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <div class="field">
    <label for="job">Job</label>
    <select id="job" name="job" required>
      <option value="">choose…</option>
      % for j in jobs:
      <option value="{{j.name}}" {{'selected' if values.get('job') == j.name else ''}}>{{j.name}}</option>
      % end
    </select>
    % if errors.get('job'):
    <p class="error" id="error-job">{{errors['job']}}</p>
    % end
  </div>
  <div class="field">
    <label for="method">Method</label>
    <select id="method" name="method" required>
      <option value="">choose…</option>
      % for j in jobs:
      % for m in j.methods:
      <option value="{{m.name}}" data-job="{{j.name}}" data-signature="{{m.signature or ''}}" {{'selected' if values.get('job') == j.name and values.get('method') == m.name else ''}}>{{j.name}}.{{m.name}}</option>
      % end
      % end
    </select>
    <p class="hint" id="signature"></p>
    % if errors.get('method'):
    <p class="error" id="error-method">{{errors['method']}}</p>
    % end
  </div>
  <div class="field">
    <label for="params">Params <span class="muted">(JSON: a list for positional, an object for keyword params)</span></label>
    <textarea id="params" name="params" rows="5" spellcheck="false" placeholder='["p1", "p2"]  or  {"path": "out.csv"}'>{{values.get('params', '')}}</textarea>
    % if errors.get('params'):
    <p class="error" id="error-params">{{errors['params']}}</p>
    % end
  </div>
  <div class="row">
    <div class="field">
      <label for="priority">Priority</label>
      <input id="priority" name="priority" inputmode="numeric" value="{{values.get('priority', '')}}" placeholder="0">
      % if errors.get('priority'):
      <p class="error">{{errors['priority']}}</p>
      % end
    </div>
    <div class="field">
      <label for="delay">Delay (s)</label>
      <input id="delay" name="delay" inputmode="decimal" value="{{values.get('delay', '')}}" placeholder="none">
      % if errors.get('delay'):
      <p class="error">{{errors['delay']}}</p>
      % end
    </div>
    <div class="field">
      <label for="max_attempts">Max attempts</label>
      <input id="max_attempts" name="max_attempts" inputmode="numeric" value="{{values.get('max_attempts', '')}}" placeholder="policy">
      % if errors.get('max_attempts'):
      <p class="error">{{errors['max_attempts']}}</p>
      % end
    </div>
    <div class="field">
      <label for="timeout">Timeout (s)</label>
      <input id="timeout" name="timeout" inputmode="decimal" value="{{values.get('timeout', '')}}" placeholder="policy">
      % if errors.get('timeout'):
      <p class="error">{{errors['timeout']}}</p>
      % end
    </div>
  </div>
  <div class="row">
    <div class="field">
      <label for="unique_key">Unique key <span class="muted">(e.g. customer-{customer} or {0})</span></label>
      <input id="unique_key" name="unique_key" value="{{values.get('unique_key', '')}}" placeholder="none" spellcheck="false">
      % if errors.get('unique'):
      <p class="error" id="error-unique">{{errors['unique']}}</p>
      % end
    </div>
    <div class="field">
      <label for="unique_until">Until</label>
      <select id="unique_until" name="unique_until">
        % for until in ('finished', 'started', 'queued'):
        <option value="{{until}}" {{!'selected' if values.get('unique_until') == until else ''}}>{{until}}</option>
        % end
      </select>
    </div>
    <div class="field">
      <label for="unique_for">For</label>
      <input id="unique_for" name="unique_for" value="{{values.get('unique_for', '')}}" placeholder="1h">
    </div>
  </div>
  <button type="submit" id="submit">Submit</button>
</form>
<section>
<h2>Allowed jobs</h2>
<div class="table-wrap">
<table class="grid allowed">
<thead><tr><th>Job</th><th>Method</th><th>Signature</th><th>Description</th></tr></thead>
<tbody>
% for j in jobs:
% for m in j.methods:
<tr><td>{{j.name}}</td><td>{{m.name}}</td><td><code>{{m.signature or '?'}}</code></td><td>{{j.description or ''}}</td></tr>
% end
% end
</tbody>
</table>
</div>
</section>
% end
