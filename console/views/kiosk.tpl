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
  <p id="kiosk-prompt" class="kiosk-prompt">Look at the camera</p>
</div>
</body>
</html>
