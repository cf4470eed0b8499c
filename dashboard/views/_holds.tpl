<section class="holds" id="holds" aria-label="Pauses and limits">
<h2>Pauses and limits</h2>
<div class="holds-spool">
% if holds.spool_paused:
  % who = holds.holds.pauses.by_name['__all__']
  <span class="paused-badge" id="spool-paused">Whole spool paused</span>
  <span class="muted">by {{who.by or '?'}}, {{who.at.isoformat(timespec='seconds')}}</span>
  <form method="post" action="/holds/resume" class="inline">
    <input type="hidden" name="csrf" value="{{csrf}}">
    <button type="submit" id="resume-spool">Resume the spool</button>
  </form>
% else:
  <span class="muted">The spool is running.</span>
  <form method="post" action="/holds/pause" class="inline" data-confirm="Pause every job name? Running attempts finish.">
    <input type="hidden" name="csrf" value="{{csrf}}">
    <button type="submit" id="pause-spool" class="danger">Pause the spool</button>
  </form>
% end
</div>
<div class="table-wrap">
<table class="grid holds-table">
<thead><tr><th>Job name</th><th>State</th><th>Slots in use / global</th><th>Rate (this window)</th><th></th></tr></thead>
<tbody>
% limits = {lim.name: lim for lim in holds.holds.limits}
% for name in holds.names:
% lim = limits.get(name)
% paused = holds.paused(name)
<tr id="hold-{{name}}" class="{{'paused' if paused else ''}}">
  <td>{{name}}</td>
  <td>
  % if paused:
    % who = holds.holds.pauses.by_name[name]
    paused <span class="muted">by {{who.by or '?'}}, {{who.at.isoformat(timespec='seconds')}}</span>
  % else:
    {{'held (spool paused)' if holds.spool_paused else 'running'}}
  % end
  </td>
  <td>{{'%d / %d' % (lim.slots_in_use or 0, lim.slots_global) if lim and lim.slots_global is not None else '-'}}</td>
  <td>{{'%d of %s' % (lim.rate_used or 0, lim.rate) if lim and lim.rate else '-'}}</td>
  <td>
    <form method="post" action="/holds/{{'resume' if paused else 'pause'}}" class="inline">
      <input type="hidden" name="csrf" value="{{csrf}}">
      <input type="hidden" name="job" value="{{name}}">
      <button type="submit" id="{{'resume' if paused else 'pause'}}-{{name}}">{{'Resume' if paused else 'Pause'}}</button>
    </form>
  </td>
</tr>
% end
</tbody>
</table>
</div>
% if holds.holds.pauses.refused:
<p class="notice">Not obeyed (not valid pause files): {{', '.join(sorted(holds.holds.pauses.refused))}}</p>
% end
</section>
