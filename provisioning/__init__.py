"""Device provisioning and the reference central-side tools."""
