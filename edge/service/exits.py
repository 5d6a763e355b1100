"""The commands' exit codes, defined once (the daemon, the command line, the systemd unit)."""

# Exit codes (the systemd unit lists the permanent ones, PERMANENT, in RestartPreventExitStatus=).
EXIT_OK = 0  # also when stopped by SIGTERM/SIGINT, whatever was delivered
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_USAGE = 2  # a bad command line, as argparse exits
EXIT_MODEL = 3
EXIT_SOURCE = 4
EXIT_BROKER = 5
# The run ended by itself (--max-frames / daemon.max_frames, the end of a file or folder that
# does not loop) and produced pose messages, but not one was delivered (the broker was away the
# whole time, say; with the spool they wait there for the next start). A camera or stream runs
# until stopped, so under systemd this needs a finite source or max_frames in the config.
EXIT_UNDELIVERED = 6
# restarting cannot help: the same configuration, model files or credentials fail again; and a
# finite run whose input is used up would only process it again
PERMANENT = (EXIT_CONFIG, EXIT_MODEL, EXIT_BROKER, EXIT_UNDELIVERED)
