<figure class="chart">
<svg viewBox="0 0 {{chart.width}} {{chart.height}}" role="img" aria-label="{{caption}}">
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
  % for tick in chart.ticks:
  <text class="tick" x="{{tick.x}}" y="{{chart.height - 4}}">{{tick.label}}</text>
  % end
  <text class="peak" x="2" y="11">peak {{chart.peak}} per {{chart.unit}}</text>
</svg>
<figcaption>{{caption}}: <span class="ok-text">{{chart.completed}} completed</span>, <span class="bad-text">{{chart.failed}} failed</span></figcaption>
</figure>
