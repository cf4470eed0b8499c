"""Tests of the dashboard: routes, actions, security, the server and the browser UI."""
