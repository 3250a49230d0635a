"""Fraud types: one module each, all with `inject(ctx) -> None` writing traces and truth."""

from synthetic.fraud import helpdesk, invoice, purchase, sale, whatsapp

INJECTORS = {
    "helpdesk": helpdesk.inject,
    "purchase": purchase.inject,
    "sale": sale.inject,
    "whatsapp": whatsapp.inject,
    "invoice": invoice.inject,
}
