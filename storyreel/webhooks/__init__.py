"""Provider webhooks: signature checks and parsing, shared by the API and the simulator."""
