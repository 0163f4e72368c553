"""Active Directory: the computer accounts whose delegation Hyper-V's Kerberos moves need."""
