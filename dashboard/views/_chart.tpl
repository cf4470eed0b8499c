<figure class="chart">
<p class="peak">peak {{chart.peak}} per {{chart.unit}}</p>
<svg class="bars" viewBox="0 0 {{chart.width}} {{chart.height}}" role="img" aria-label="{{caption}}">
  <line class="axis" x1="0" y1="{{chart.baseline}}" x2="{{chart.width}}" y2="{{chart.baseline}}"></line>
  % for bar in chart.bars:
  <g class="bar">
    <title>{{bar.title}}</title>
    <rect class="hit" x="{{bar.x}}" y="0" width="{{bar.width}}" height="{{chart.baseline}}"></rect>
    % if bar.ok_h > 0:
    <rect class="ok" x="{{bar.x}}" y="{{bar.ok_y}}" width="{{bar.width}}" height="{{bar.ok_h}}"></rect>
    % end
    % if bar.bad_h > 0:
    <rect class="bad" x="{{bar.x}}" y="{{bar.bad_y}}" width="{{bar.width}}" height="{{bar.bad_h}}"></rect>
    % end
  </g>
  % end
</svg>
<svg class="ticks" width="100%" height="18" aria-hidden="true">
  % for tick in chart.ticks:
  <text class="tick" x="{{tick.pct}}%" y="13" text-anchor="{{tick.anchor}}">{{tick.label}}</text>
  % end
</svg>
<figcaption>{{caption}}: <span class="ok-text">{{chart.completed}} completed</span>, <span class="bad-text">{{chart.failed}} failed</span></figcaption>
</figure>
