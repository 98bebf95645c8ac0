"""UnionPay ACP 5.1.0 (online gateway payment) in the sandbox: README.md "UnionPay"."""
