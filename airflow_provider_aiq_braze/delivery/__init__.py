"""The delivery engine shared by every operator: batch, send, record, account."""
