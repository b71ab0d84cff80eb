"""Signed remote commands, the gateway's side (issue 9): state, verifier, command channel.

verifier = await ChannelVerifier.open(pub, "gw-rose-01", state_path, clock, limits)
channel = CommandChannel(journal, clock, sync_section, CommandsSection(), data_dir=d,
                         trigger=runtime.remote(verifier), verifier=verifier)
"""
