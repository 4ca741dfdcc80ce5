<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Rollcall kiosk</title>
<link rel="stylesheet" href="/static/style.css">
<script src="/static/app.js" defer></script>
</head>
<body class="kiosk" data-kiosk="/api/kiosk">
<div class="kiosk-card" id="kiosk" data-state="idle">
  <img id="kiosk-photo" class="hidden" alt="">
  <p id="kiosk-name" class="kiosk-name"></p>
  <p id="kiosk-seat" class="kiosk-seat"></p>
  <p id="kiosk-status" class="kiosk-status hidden"></p>
  <div id="kiosk-challenge" class="kiosk-challenge hidden" aria-live="assertive">
    <svg id="kiosk-icon" class="kiosk-icon" viewBox="0 0 100 100" role="img" aria-labelledby="kiosk-word">
      <g data-icon="arrow"><path d="M50 12 L86 52 H62 V88 H38 V52 H14 Z"/></g>
      <g data-icon="blink"><path d="M8 50 Q50 8 92 50 Q50 92 8 50 Z" fill="none" stroke-width="8"/><path d="M14 56 Q50 86 86 56" fill="none" stroke-width="8"/><path d="M20 70 L12 82 M38 78 L34 92 M62 78 L66 92 M80 70 L88 82" stroke-width="6"/></g>
      <g data-icon="hold"><circle cx="50" cy="50" r="34" fill="none" stroke-width="8"/><circle cx="50" cy="50" r="10"/></g>
      <g data-icon="again"><path d="M78 50 A28 28 0 1 1 64 26" fill="none" stroke-width="9"/><path d="M58 8 L84 24 L58 40 Z"/></g>
    </svg>
    <p id="kiosk-word" class="kiosk-word"></p>
    <ol id="kiosk-steps" class="kiosk-steps" aria-label="Progress"></ol>
  </div>
  <p id="kiosk-prompt" class="kiosk-prompt">Look at the camera</p>
</div>
</body>
</html>
