"""Hyper-V hosts over PowerShell remoting (pypsrp); see :mod:`.driver`."""
