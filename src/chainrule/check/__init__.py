"""Checking gradients, and a learner's own classes: central differences and kinks (`numeric`), one
object under check (`probe`, `component`), the conditions a check runs under (`conditions`), a
whole network (`network`), the entry point (`gradcheck`), a comparison with a reference
(`compare`), an optimizer beside chainrule's (`optimizer`), and the verdicts and hints
(`diagnosis`)."""
