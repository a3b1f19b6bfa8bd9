#!/bin/sh
# report_queue_term.sh - report_queue_crash.sh with SIGTERM instead of
# kill -9: the provider stops within its shutdown wait while the exchange
# is frozen, and the reports it could not deliver are resent at restart.
REPORT_QUEUE_SIG=TERM
. tests/e2e/report_queue_crash.sh
