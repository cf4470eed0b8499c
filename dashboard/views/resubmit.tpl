% rebase('layout.tpl', title=title)
<h1>Edit and resubmit</h1>
<p>A new job <strong>{{rec.job}}.{{rec.method}}</strong> is queued with the params below, checked as a submission is. Job <a href="/jobs/{{view.id}}"><code>{{view.id}}</code></a> stays as it is ({{view.status}}); each job's page links to the other.</p>
% if rec.error:
<p class="error-line" id="old-error"><span class="muted">It {{'was rejected' if (rec.reason or '').startswith('rejected') else 'failed'}} with</span> <strong>{{rec.error.type}}</strong>: {{rec.error.message}}</p>
% end
% if errors.get(''):
<p class="error" role="alert" id="error-form">{{errors['']}}</p>
% end
<form method="post" action="/jobs/{{view.id}}/resubmit" class="submit-form" id="resubmit-form">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <div class="field">
    <label for="params">Params <span class="muted">(JSON: a list for positional, an object for keyword params)</span></label>
    % if signature:
    <p class="hint" id="signature">{{rec.job}}.{{rec.method}}{{signature}}</p>
    % end
    <textarea id="params" name="params" rows="{{min(20, max(5, params_text.count(chr(10)) + 2))}}" spellcheck="false">{{params_text}}</textarea>
    % if errors.get('params'):
    <p class="error" id="error-params">{{errors['params']}}</p>
    % end
  </div>
  <button type="submit" id="resubmit-submit">Resubmit as a new job</button>
  <a href="/jobs/{{view.id}}" class="cancel-link">Back to the job</a>
</form>
