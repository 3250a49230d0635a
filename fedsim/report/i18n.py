"""The report's words in Dutch and English: one phrase book, looked up by key, filled with ``str.format``.

The Dutch is written for Dutch readers, not translated word for word, and uses the programme's own terms from
the annual report of the Integrale Aanpak Online Fraude (jaarbericht 2023): bankhelpdeskfraude, aan- en
verkoopfraude, de criminal journey, het barrièremodel, barrières, and "geldezels" for money mules. Names of
fraud types, regimes, phases, partners and metrics have their own tables so that tables and figures use the
same words as the sentences.
"""

from __future__ import annotations

import re

from fedsim.report.format import Lang

P: dict[str, dict[str, str]] = {
    # --- title and page one -------------------------------------------------------------------------------------
    "title": {
        "en": "Would sharing data catch online fraud earlier?",
        "nl": "Ontdekt de keten online fraude eerder door gegevens te delen?",
    },
    "subtitle": {
        "en": "Effectiveness report of experiment {experiment}, made on {date} from its tracked runs.",
        "nl": "Effectiviteitsrapport van experiment {experiment}, op {date} gemaakt uit de vastgelegde runs.",
    },
    "synthetic_warning": {
        "en": "Every figure comes from a synthetic world, not from real customers: it shows what the testbed "
        "measures, not yet a policy conclusion.",
        "nl": "Alle cijfers komen uit een synthetische wereld, niet van echte klanten: ze laten zien wat het "
        "testbed meet, en zijn nog geen beleidsconclusie.",
    },
    "s_page_one": {"en": "In brief", "nl": "In het kort"},
    "ranges_explained": {
        "en": "Each figure comes with its range: the 95% confidence interval over the cases and the training "
        "seeds. Where the range includes zero, the report says there is no measurable difference.",
        "nl": "Elk cijfer staat er met zijn bandbreedte: het 95%-betrouwbaarheidsinterval over de fraudezaken en "
        "de trainingsruns met verschillende seeds. Loopt de bandbreedte door nul heen, dan spreekt het rapport "
        "van geen meetbaar verschil.",
    },
    "scope": {
        "en": "Page one compares {a} with {b}, for {fraud_type}.",
        "nl": "Deze pagina vergelijkt {a} met {b}, voor {fraud_type}.",
    },
    "problems_intro": {
        "en": "Not every run of this experiment finished. The numbers in this report leave out these {n} cells:",
        "nl": "Niet alle runs van dit experiment zijn afgerond. De cijfers in dit rapport laten deze {n} cellen "
        "buiten beschouwing:",
    },
    "no_problems": {
        "en": "All {n} runs of the experiment finished; none is left out.",
        "nl": "Alle {n} runs van het experiment zijn afgerond; er is er geen weggelaten.",
    },
    "problem_missing": {"en": "missing: no run in the store", "nl": "ontbreekt: geen run in de opslag"},
    "problem_failed": {"en": "failed", "nl": "mislukt"},
    "problem_unfinished": {"en": "still running or interrupted", "nl": "nog bezig of afgebroken"},
    "range": {"en": "range {lo} to {hi}", "nl": "bandbreedte {lo} tot {hi}"},
    "cases_gain": {
        "en": "Compared with {b}, {a} catches {n} more fraud cases before the money leaves ({rng}): {share} of all "
        "cases ({srng}).",
        "nl": "Vergeleken met {b} worden met {a} {n} fraudezaken méér ontdekt voordat het geld weg is ({rng}): "
        "{share} van alle zaken ({srng}).",
    },
    "cases_loss": {
        "en": "Compared with {b}, {a} catches {n} fewer fraud cases before the money leaves ({rng}): {share} of "
        "all cases ({srng}).",
        "nl": "Vergeleken met {b} worden met {a} {n} fraudezaken minder ontdekt voordat het geld weg is ({rng}): "
        "{share} van alle zaken ({srng}).",
    },
    "cases_none": {
        "en": "Between {a} and {b} there is no measurable difference in the fraud cases caught before the money "
        "leaves: the range runs from {lo} to {hi} cases ({slo} to {shi} of all cases).",
        "nl": "Tussen {a} en {b} is er geen meetbaar verschil in het aantal fraudezaken dat wordt ontdekt "
        "voordat het geld weg is: de bandbreedte loopt van {lo} tot {hi} zaken ({slo} tot {shi} van alle zaken).",
    },
    "eur_world_gain": {
        "en": "In the synthetic world that prevents {v} of losses over its {days}-day test window ({rng}).",
        "nl": "In de synthetische wereld voorkomt dat {v} schade in de testperiode van {days} dagen ({rng}).",
    },
    "eur_world_loss": {
        "en": "In the synthetic world that prevents {v} less loss over its {days}-day test window ({rng}).",
        "nl": "In de synthetische wereld voorkomt dat {v} minder schade in de testperiode van {days} dagen ({rng}).",
    },
    "eur_world_none": {
        "en": "In euros prevented there is no measurable difference in the synthetic world over its {days}-day "
        "test window: the range runs from {lo} to {hi}.",
        "nl": "In voorkomen schade is er in de synthetische wereld geen meetbaar verschil over de testperiode van "
        "{days} dagen: de bandbreedte loopt van {lo} tot {hi}.",
    },
    "eur_nl_gain": {
        "en": "Extrapolated to the Netherlands that would be {v} a year ({rng}), assuming:",
        "nl": "Doorgetrokken naar heel Nederland zou dat {v} per jaar zijn ({rng}), uitgaande van:",
    },
    "eur_nl_loss": {
        "en": "Extrapolated to the Netherlands that would be {v} a year less prevented ({rng}), assuming:",
        "nl": "Doorgetrokken naar heel Nederland zou er {v} per jaar minder schade worden voorkomen ({rng}), "
        "uitgaande van:",
    },
    "eur_nl_none": {
        "en": "Extrapolated to the Netherlands the range runs from {lo} to {hi} a year: no measurable difference "
        "there either. This assumes:",
        "nl": "Doorgetrokken naar heel Nederland loopt de bandbreedte van {lo} tot {hi} per jaar: ook daar geen "
        "meetbaar verschil. Daarbij is uitgegaan van:",
    },
    "eur_nl_method": {
        "en": "the euros prevented per case at real prevalence, times the Dutch victims a year: every Dutch victim "
        "is taken to be a case like the world's, with the world's mix of fraud types",
        "nl": "de voorkomen schade per zaak bij werkelijke prevalentie, maal het aantal Nederlandse slachtoffers per "
        "jaar: elk Nederlands slachtoffer geldt als een zaak zoals in de wereld, met dezelfde verhouding tussen "
        "de fraudevormen",
    },
    "privacy_cost": {
        "en": "Privacy cost, per person: ε = {eps} for all models together (every model that used a person's "
        "data, composed). An attacker's odds of telling whether you were in the data grow at most {odds} "
        "(e^ε{rng}).",
        "nl": "Privacykosten per persoon: ε = {eps} voor alle modellen samen (elk model dat iemands gegevens "
        "gebruikte, bij elkaar opgeteld). De kans dat een aanvaller kan vaststellen of uw gegevens zijn gebruikt, "
        "wordt in odds hooguit {odds} zo groot (e^ε{rng}).",
    },
    "privacy_cost_no_practical_bound": {
        "en": "Privacy cost, per person: ε = {eps} for all models together (every model that used a person's "
        "data, composed). A bound this large protects nobody in practice: it lets an attacker's odds of telling "
        "whether you were in the data grow more than a billion-fold (e^ε). Pooling many models over the same "
        "persons adds up their ε.",
        "nl": "Privacykosten per persoon: ε = {eps} voor alle modellen samen (elk model dat iemands gegevens "
        "gebruikte, bij elkaar opgeteld). Een grens die zo ruim is, beschermt in de praktijk niemand: de kans dat een "
        "aanvaller kan vaststellen of uw gegevens zijn gebruikt, mag in odds meer dan een miljard keer zo groot "
        "worden (e^ε). Veel modellen over dezelfde personen tellen hun ε op.",
    },
    "privacy_none": {
        "en": "Privacy cost: this experiment trained no model with differential privacy, so it gives no formal "
        "bound per person. An experiment with a finite ε (privacy: epsilon) would measure it.",
        "nl": "Privacykosten: dit experiment trainde geen model met differential privacy en geeft dus geen "
        "formele grens per persoon. Een experiment met een eindige ε (privacy: epsilon) meet die wel.",
    },
    # --- per fraud type -------------------------------------------------------------------------------------------
    "s_fraud_types": {"en": "Results per fraud type", "nl": "Resultaten per fraudevorm"},
    "fraud_types_intro": {
        "en": "Each fraud type below is measured as {metric}.",
        "nl": "Elke fraudevorm hieronder is gemeten als {metric}.",
    },
    "sub_coalition": {
        "en": "The most effective coalition and each partner's value",
        "nl": "De meest effectieve coalitie en de waarde van elke partner",
    },
    "best_coalition": {
        "en": "Most effective coalition: {best}. Smallest coalition that does not do measurably worse: {near}.",
        "nl": "Meest effectieve coalitie: {best}. Kleinste coalitie die daar niet meetbaar voor onderdoet: {near}.",
    },
    "every_partner_gains_true": {
        "en": "Every partner gains: the full chain does measurably better than each partner on its own.",
        "nl": "Elke partner wint erbij: de hele keten doet het meetbaar beter dan elke partner voor zich.",
    },
    "every_partner_gains_false": {
        "en": "Not every partner gains: for at least one partner the full chain does not do measurably better "
        "than that partner on its own.",
        "nl": "Niet elke partner wint erbij: voor minstens één partner doet de hele keten het niet meetbaar beter "
        "dan die partner alleen.",
    },
    "returns_diminish_true": {
        "en": "Each further partner adds less than the one before (diminishing returns).",
        "nl": "Elke volgende partner voegt minder toe dan de vorige (afnemende meeropbrengst).",
    },
    "returns_diminish_false": {
        "en": "Returns do not diminish: later partners add as much as earlier ones, or more.",
        "nl": "De meeropbrengst neemt niet af: latere partners voegen evenveel toe als eerdere, of meer.",
    },
    "shapley_explained": {
        "en": "A partner's Shapley value is its average gain over every order in which the partners could join "
        "the coalition; the values add up to the full chain's result. Banzhaf weighs every coalition equally; "
        "leave-one-out is what the full chain loses without the partner.",
        "nl": "De Shapley-waarde van een partner is de gemiddelde winst die hij oplevert, over alle volgordes "
        "waarin de partners zich bij de coalitie kunnen aansluiten; samen tellen de waarden op tot het resultaat "
        "van de hele keten. Banzhaf weegt elke coalitie even zwaar; bij weglaten staat wat de hele keten "
        "verliest zonder die partner.",
    },
    "h_partner": {"en": "Partner", "nl": "Partner"},
    "h_shapley": {"en": "Shapley value (range)", "nl": "Shapley-waarde (bandbreedte)"},
    "h_banzhaf": {"en": "Banzhaf value (range)", "nl": "Banzhaf-waarde (bandbreedte)"},
    "h_loo": {"en": "Leave-one-out (range)", "nl": "Bij weglaten (bandbreedte)"},
    "empty_partner_values": {
        "en": "This experiment did not measure each partner's value: that needs every coalition of partners "
        "(coalitions: lattice in the experiment file, then fedsim value).",
        "nl": "Dit experiment heeft de waarde per partner niet gemeten: daarvoor is elke coalitie van partners "
        "nodig (coalitions: lattice in het experimentbestand, daarna fedsim value).",
    },
    "sub_sharing": {"en": "Sharing reports versus sharing data", "nl": "Meldingen delen of gegevens delen"},
    "sharing_intro": {
        "en": "Each form of sharing against today's situation (each partner on its own), in {metric}. Sharing "
        "reports passes on only fraud reports; pooling passes on the data as well.",
        "nl": "Elke vorm van delen vergeleken met de huidige situatie (elke partner voor zich), in {metric}. Bij "
        "het delen van meldingen gaan alleen fraudemeldingen over; bij samenvoegen ook de gegevens zelf.",
    },
    "h_form": {"en": "Form of sharing", "nl": "Vorm van delen"},
    "h_difference": {"en": "Difference with today (range)", "nl": "Verschil met nu (bandbreedte)"},
    "empty_sharing_forms": {
        "en": "This experiment did not compare forms of sharing: that needs status_quo together with reports and "
        "pooled (or another sharing regime).",
        "nl": "Dit experiment heeft geen vormen van delen vergeleken: daarvoor zijn status_quo, reports en pooled "
        "(of een andere vorm van delen) samen nodig.",
    },
    "sub_steps": {"en": "Rules, own models and sharing", "nl": "Regels, eigen modellen en delen"},
    "steps_intro": {
        "en": "Three steps: the rule books partners use today, each partner's own model, and sharing; in {metric}.",
        "nl": "Drie stappen: de regels die partners nu gebruiken, een eigen model per partner, en delen; in {metric}.",
    },
    "h_step": {"en": "Step", "nl": "Stap"},
    "h_result": {"en": "Result (range)", "nl": "Uitkomst (bandbreedte)"},
    "step_rules": {"en": "Rules (today)", "nl": "Regels (nu)"},
    "step_own_models": {"en": "Own models", "nl": "Eigen modellen"},
    "step_sharing": {"en": "Sharing", "nl": "Delen"},
    "empty_steps": {
        "en": "This experiment did not compare rules, own models and sharing: that needs the rules, status_quo "
        "and a sharing regime together (as in rules_vs_models.yaml).",
        "nl": "Dit experiment heeft regels, eigen modellen en delen niet naast elkaar gezet: daarvoor zijn rules, "
        "status_quo en een vorm van delen samen nodig (zoals in rules_vs_models.yaml).",
    },
    "sub_ed": {"en": "How early fraud is caught", "nl": "Hoe vroeg fraude wordt ontdekt"},
    "cap_ed": {
        "en": "Share of cases detected at least h hours before the money left, with its 95% band.",
        "nl": "Aandeel zaken dat minstens h uur voordat het geld wegging is ontdekt, met de 95%-band.",
    },
    "sub_lead": {
        "en": "Lead time: how long before the money is gone",
        "nl": "Voorsprong: hoe lang voordat het geld weg is",
    },
    "cap_lead": {
        "en": "Hours between the first alert and the money leaving, per detected case (all seeds).",
        "nl": "Uren tussen het eerste signaal en het moment dat het geld wegging, per ontdekte zaak (alle seeds).",
    },
    "sub_phase": {
        "en": "Detection by phase of the criminal journey",
        "nl": "Ontdekking per fase van de criminal journey",
    },
    "cap_phase": {
        "en": "Share of cases first detected in each phase of the criminal journey.",
        "nl": "Aandeel zaken dat in elke fase van de criminal journey voor het eerst wordt ontdekt.",
    },
    "sub_waterfall": {
        "en": "From the best single partner to the full chain",
        "nl": "Van de beste partner alleen naar de hele keten",
    },
    "cap_waterfall": {
        "en": "Partners added one at a time, from the best single partner to the full chain; each bar is the gain "
        "of one step, in {metric}.",
        "nl": "Partners één voor één toegevoegd, van de beste partner alleen tot de hele keten; elke balk is de "
        "winst van één stap, in {metric}.",
    },
    "sub_heatmap": {
        "en": "Every coalition under every form of sharing",
        "nl": "Elke coalitie onder elke vorm van delen",
    },
    "cap_heatmap": {
        "en": "The outcome of every coalition under every form of sharing, in {metric}.",
        "nl": "De uitkomst van elke coalitie onder elke vorm van delen, in {metric}.",
    },
    "empty_lattice": {
        "en": "This experiment did not run every coalition: that needs coalitions: lattice in the experiment file.",
        "nl": "Dit experiment heeft niet elke coalitie gedraaid: daarvoor is coalitions: lattice in het "
        "experimentbestand nodig.",
    },
    "sub_privacy": {"en": "Privacy against effectiveness", "nl": "Privacy tegenover effectiviteit"},
    "cap_privacy": {
        "en": "{metric} against ε per person (all models composed), with 95% whiskers; ∞ means no differential "
        "privacy.",
        "nl": "{metric} tegen ε per persoon (alle modellen samen), met 95%-marges; ∞ betekent zonder differential "
        "privacy.",
    },
    "empty_privacy": {
        "en": "This experiment did not weigh privacy against effectiveness: that needs runs at several ε "
        "(privacy: epsilon in the experiment file, as in privacy_chain.yaml).",
        "nl": "Dit experiment heeft privacy niet tegen effectiviteit afgewogen: daarvoor zijn runs bij "
        "verschillende ε nodig (privacy: epsilon in het experimentbestand, zoals in privacy_chain.yaml).",
    },
    "empty_case_alerts": {
        "en": "This experiment did not measure it for this fraud type (no finished run with case alert times).",
        "nl": "Dit experiment heeft dit voor deze fraudevorm niet gemeten (geen afgeronde run met signaaltijden "
        "per zaak).",
    },
    # --- audit ---------------------------------------------------------------------------------------------------
    "s_audit": {"en": "Privacy audit and leakage register", "nl": "Privacy-audit en lekkageregister"},
    "sub_audit": {"en": "Audit results", "nl": "Uitkomsten van de audit"},
    "audit_intro": {
        "en": "The audit attacks the trained models: a membership attack and planted canary records estimate how "
        "much an attacker really learns, against the bound that ε promises.",
        "nl": "De audit valt de getrainde modellen aan: een lidmaatschapsaanval en geplante canary-records schatten "
        "hoeveel een aanvaller werkelijk te weten komt, vergeleken met de grens die ε belooft.",
    },
    "h_check": {"en": "Check", "nl": "Toets"},
    "h_epsilon": {"en": "ε", "nl": "ε"},
    "h_statistic": {"en": "Measured", "nl": "Gemeten"},
    "h_bound": {"en": "Bound", "nl": "Grens"},
    "h_passed": {"en": "Passed", "nl": "Geslaagd"},
    "yes": {"en": "yes", "nl": "ja"},
    "no": {"en": "no", "nl": "nee"},
    "empty_audit": {
        "en": "This experiment has no privacy audit: fedsim audit on the experiment would make one.",
        "nl": "Voor dit experiment is geen privacy-audit gedaan: fedsim audit op het experiment maakt er een.",
    },
    "sub_register": {"en": "Leakage register", "nl": "Lekkageregister"},
    "register_intro": {
        "en": "What leaves each partner under each form of sharing, what protects it, and what risk remains.",
        "nl": "Wat elke partner bij elke vorm van delen verlaat, wat dat beschermt en welk risico overblijft. De "
        "omschrijvingen zijn in het Engels, zoals fedsim ze vastlegt.",
    },
    "h_what_leaves": {"en": "What leaves the partner", "nl": "Wat de partner verlaat"},
    "h_protected_by": {"en": "Protected by", "nl": "Beschermd door"},
    "h_residual_risk": {"en": "Residual risk", "nl": "Restrisico"},
    "empty_register": {
        "en": "No leakage register was recorded for this experiment.",
        "nl": "Voor dit experiment is geen lekkageregister vastgelegd.",
    },
    # --- methods, limitations, parameters -------------------------------------------------------------------------
    "s_methods": {
        "en": "Methods and where the numbers come from",
        "nl": "Werkwijze en herkomst van de cijfers",
    },
    "m_experiment": {"en": "Experiment", "nl": "Experiment"},
    "m_generated": {"en": "Made on", "nl": "Gemaakt op"},
    "m_store": {"en": "Tracking store (MLflow)", "nl": "Opslag van de runs (MLflow)"},
    "m_world": {"en": "World hash", "nl": "Hash van de wereld"},
    "m_commit": {"en": "Git commit", "nl": "Git-commit"},
    "m_config": {"en": "Config hashes", "nl": "Hashes van de configuratie"},
    "m_seeds": {"en": "Training seeds", "nl": "Trainingsseeds"},
    "m_how": {
        "en": "How each figure on page one was computed (runs listed below):",
        "nl": "Hoe elk cijfer op de eerste pagina is berekend (in het Engels; de runs staan hieronder):",
    },
    "m_how_item": {"en": "{what}: {how} ({n} runs)", "nl": "{what}: {how} ({n} runs)"},
    "what_extra_cases": {"en": "extra cases caught", "nl": "extra ontdekte zaken"},
    "what_extra_share": {"en": "share of all cases", "nl": "aandeel van alle zaken"},
    "what_euros_world": {"en": "euros prevented (world)", "nl": "voorkomen schade (wereld)"},
    "what_euros_nl": {"en": "euros prevented (Netherlands)", "nl": "voorkomen schade (Nederland)"},
    "what_privacy_odds": {"en": "odds multiplier", "nl": "factor op de odds"},
    "what_epsilon_person": {"en": "ε per person", "nl": "ε per persoon"},
    "h_run_name": {"en": "Run", "nl": "Run"},
    "h_run_id": {"en": "MLflow run id", "nl": "MLflow-run-id"},
    "s_limitations": {"en": "Limitations", "nl": "Beperkingen"},
    "lim_synthetic": {
        "en": "The data are synthetic: one simulated population of {persons} persons over {days} days, calibrated "
        "to Dutch figures, with no real customer in it. The results show what the testbed measures, not how a "
        "real chain would perform.",
        "nl": "De gegevens zijn synthetisch: één gesimuleerde bevolking van {persons} personen over {days} dagen, "
        "afgestemd op Nederlandse cijfers, zonder één echte klant. De uitkomsten laten zien wat het testbed meet, "
        "niet hoe een echte keten zou presteren.",
    },
    "lim_prevalence": {
        "en": "To have enough cases to learn from, the world has more fraud than the real population. Per fraud "
        "type the prevalence is multiplied by:",
        "nl": "Om genoeg zaken te hebben om van te leren, bevat de wereld meer fraude dan de werkelijkheid. Per "
        "fraudevorm is de prevalentie vermenigvuldigd met:",
    },
    "lim_window": {
        "en": "One time window: the models learn from {train} days and are tested on the {test} days after them. "
        "Another period, or criminals adapting to a new barrier, can give other results.",
        "nl": "Eén tijdvenster: de modellen leren van {train} dagen en worden getest op de {test} dagen daarna. "
        "Een andere periode, of criminelen die zich aanpassen aan een nieuwe barrière uit het barrièremodel, kan "
        "tot andere uitkomsten leiden.",
    },
    "lim_eps_covers": {"en": "What ε covers:", "nl": "Wat ε afdekt:"},
    "lim_eps_not": {"en": "What ε does not cover:", "nl": "Wat ε niet afdekt:"},
    "s_parameters": {"en": "Full parameter set", "nl": "Alle parameters"},
    "parameters_intro": {
        "en": "Every setting of the experiment, as logged with its runs.",
        "nl": "Alle instellingen van het experiment, zoals vastgelegd bij de runs.",
    },
    "h_parameter": {"en": "Parameter", "nl": "Parameter"},
    "h_value": {"en": "Value", "nl": "Waarde"},
    # --- figure axes ----------------------------------------------------------------------------------------------
    "ax_hours_before": {"en": "hours before the money left (h)", "nl": "uren voordat het geld wegging (h)"},
    "ax_share_detected": {"en": "share of cases detected", "nl": "aandeel ontdekte zaken"},
    "ax_lead_hours": {
        "en": "hours between first alert and money leaving",
        "nl": "uren tussen eerste signaal en wegsluizen",
    },
    "ax_cases": {"en": "cases", "nl": "zaken"},
    "ax_share_cases": {"en": "share of cases", "nl": "aandeel zaken"},
    "ax_epsilon": {"en": "ε per person (all models)", "nl": "ε per persoon (alle modellen)"},
    "ax_coalition": {"en": "coalition", "nl": "coalitie"},
    "ax_form": {"en": "form of sharing", "nl": "vorm van delen"},
    "ax_total": {"en": "full chain", "nl": "hele keten"},
}

FRAUD_TYPES: dict[str, dict[str, str]] = {
    "all": {"en": "all fraud types together", "nl": "alle fraudevormen samen"},
    "helpdesk": {"en": "bank-helpdesk fraud", "nl": "bankhelpdeskfraude"},
    "purchase": {
        "en": "purchase fraud (goods paid for, never delivered)",
        "nl": "aankoopfraude (betaald, nooit geleverd)",
    },
    "sale": {"en": "sale fraud (seller sent a fake payment link)", "nl": "verkoopfraude (valse betaallink)"},
    "whatsapp": {"en": "WhatsApp fraud ('hi mum')", "nl": "WhatsApp-fraude ('hoi mam')"},
    "invoice": {"en": "invoice fraud (changed account number)", "nl": "factuurfraude (gewijzigd rekeningnummer)"},
}

# Regimes as a noun phrase that fits a sentence ("Compared with {b}, {a} catches ...").
REGIMES: dict[str, dict[str, str]] = {
    "status_quo": {
        "en": "today's situation (each partner on its own)",
        "nl": "de huidige situatie (elke partner voor zich)",
    },
    "siloed": {"en": "a single partner on its own", "nl": "één partner voor zich"},
    "watchlist": {"en": "a shared watch list of money mules", "nl": "een gedeelde waarschuwingslijst van geldezels"},
    "reports": {"en": "sharing fraud reports", "nl": "het delen van fraudemeldingen"},
    "pooled": {"en": "pooling all data", "nl": "het samenvoegen van alle gegevens"},
    "pooled_oracle": {
        "en": "pooling all data on true identities (an upper bound)",
        "nl": "het samenvoegen van alle gegevens op echte identiteiten (een bovengrens)",
    },
    "horizontal": {"en": "federated learning among the banks", "nl": "federatief leren tussen de banken"},
    "vertical": {"en": "federated learning along the chain", "nl": "federatief leren langs de keten"},
    "hybrid": {"en": "hybrid federated learning", "nl": "hybride federatief leren"},
    "rules": {"en": "today's rule books", "nl": "de huidige detectieregels"},
    "mo_alerts": {
        "en": "sharing modus-operandi alerts without names",
        "nl": "het zonder namen delen van modus-operandi-signalen",
    },
}

# Regimes as a short label for tables and figures.
REGIME_LABELS: dict[str, dict[str, str]] = {
    "status_quo": {"en": "Today (each alone)", "nl": "Nu (elk voor zich)"},
    "siloed": {"en": "One partner", "nl": "Eén partner"},
    "watchlist": {"en": "Watch list", "nl": "Waarschuwingslijst"},
    "reports": {"en": "Reports", "nl": "Meldingen"},
    "pooled": {"en": "Pooled data", "nl": "Gegevens samen"},
    "pooled_oracle": {"en": "Pooled (oracle)", "nl": "Samen (orakel)"},
    "horizontal": {"en": "Federated: banks", "nl": "Federatief: banken"},
    "vertical": {"en": "Federated: chain", "nl": "Federatief: keten"},
    "hybrid": {"en": "Federated: hybrid", "nl": "Federatief: hybride"},
    "rules": {"en": "Rules", "nl": "Regels"},
    "mo_alerts": {"en": "MO alerts", "nl": "MO-signalen"},
}

PHASES: dict[str, dict[str, str]] = {
    "orientation": {"en": "orientation", "nl": "oriëntatie"},
    "preparation": {"en": "preparation", "nl": "voorbereiding"},
    "contact": {"en": "contact", "nl": "contact"},
    "convincing": {"en": "convincing the victim", "nl": "overtuigen"},
    "money_transfer": {"en": "money transfer", "nl": "overboeking"},
    "cash_out": {"en": "cash-out by money mules", "nl": "wegsluizen via geldezels"},
    "before_orientation": {"en": "before the journey began", "nl": "vóór de eerste fase"},
    "undetected": {"en": "not detected", "nl": "niet ontdekt"},
}

PARTNER_KINDS: dict[str, dict[str, str]] = {
    "bank": {"en": "bank", "nl": "bank"},
    "telco": {"en": "telco", "nl": "telecomaanbieder"},
    "marketplace": {"en": "marketplace", "nl": "online marktplaats"},
    "placebo": {"en": "placebo partner", "nl": "placebopartner"},
}

# Assumptions behind the extrapolation to the Netherlands and what ε covers: known keys in words; an unknown key
# is shown as written (never dropped).
ASSUMPTIONS: dict[str, dict[str, str]] = {
    "victims_per_year": {
        "en": "online-fraud victims a year in the Netherlands",
        "nl": "slachtoffers van online fraude per jaar in Nederland",
    },
    "world_cases_test_window": {
        "en": "fraud cases in the world's test window",
        "nl": "fraudezaken in de testperiode van de wereld",
    },
    "world_cases_at_real_prevalence": {
        "en": "the same cases at real prevalence (each type divided by its multiplier)",
        "nl": "dezelfde zaken bij werkelijke prevalentie (per fraudevorm gedeeld door de factor)",
    },
    "multiplier": {"en": "prevalence multiplier, {type}", "nl": "prevalentiefactor, {type}"},
    "cases": {"en": "cases in the test window, {type}", "nl": "zaken in de testperiode, {type}"},
}
EPSILON_SCOPE: dict[str, dict[str, str]] = {
    "training_examples": {
        "en": "every training example of a person, in every model trained with differential privacy",
        "nl": "elk trainingsvoorbeeld van een persoon, in elk model dat met differential privacy is getraind",
    },
    "per_person_composition": {
        "en": "all models together per person: someone in several partners' data counts in every model",
        "nl": "alle modellen samen per persoon: wie bij meerdere partners voorkomt, telt in elk model mee",
    },
    "test_scores": {
        "en": "the scores and alerts on the test window",
        "nl": "de scores en signalen in de testperiode",
    },
    "reports_shared": {
        "en": "fraud reports shared between partners (shared without noise)",
        "nl": "fraudemeldingen die partners met elkaar delen (zonder ruis gedeeld)",
    },
}


def t(key: str, lang: Lang, **values: object) -> str:
    """The phrase ``key`` in ``lang``, filled with ``values``."""
    return P[key][lang].format(**values)


def _lookup(table: dict[str, dict[str, str]], key: str, lang: Lang) -> str:
    return table[key][lang] if key in table else key.replace("_", " ")


def fraud_type(key: str, lang: Lang, *, heading: bool = False) -> str:
    """A fraud type in words; ``heading`` capitalises the first letter."""
    text = _lookup(FRAUD_TYPES, key, lang)
    return text[:1].upper() + text[1:] if heading else text


def regime(key: str, lang: Lang) -> str:
    """A regime as a noun phrase for sentences."""
    return _lookup(REGIMES, key, lang)


def regime_label(key: str, lang: Lang) -> str:
    """A regime as a short label for tables and figures."""
    return REGIME_LABELS[key][lang] if key in REGIME_LABELS else key


def phase(key: str, lang: Lang) -> str:
    return _lookup(PHASES, key, lang)


def partner(name: str, lang: Lang) -> str:
    """A partner in words: ``bank_2`` → "bank 2", ``telco`` → "telecomaanbieder" (nl)."""
    match = re.fullmatch(r"([a-z]+)(?:_(\d+))?", name)
    if match is None or match.group(1) not in PARTNER_KINDS:
        return name
    kind = PARTNER_KINDS[match.group(1)][lang]
    return f"{kind} {match.group(2)}" if match.group(2) else kind


def coalition(members: tuple[str, ...] | list[str] | str, lang: Lang) -> str:
    """A coalition as its partners joined by "+" (a string is split on "+", "," or whitespace)."""
    if isinstance(members, str):
        members = [m for m in re.split(r"[+,\s]+", members) if m]
    return " + ".join(partner(m, lang) for m in members)


def assumption(key: str, lang: Lang) -> str:
    """An assumption of the extrapolation in words; ``multiplier.<type>`` and ``cases.<type>`` name the type."""
    head, _, fraud = key.partition(".")
    if fraud and head in ASSUMPTIONS:
        return ASSUMPTIONS[head][lang].format(type=fraud_type(fraud, lang))
    return _lookup(ASSUMPTIONS, key, lang)


def epsilon_scope(key: str, lang: Lang) -> str:
    return _lookup(EPSILON_SCOPE, key, lang)


def metric(key: str, lang: Lang) -> str:
    """A metric key in words, e.g. ``ed_h0`` → "the share of cases caught before the money left (ED(0))"."""
    if match := re.fullmatch(r"ed_h(\d+(?:\.\d+)?)", key):
        h = match.group(1)
        if float(h) == 0:
            return {
                "en": "the share of cases caught before the money left (ED(0))",
                "nl": "het aandeel zaken dat is ontdekt voordat het geld wegging (ED(0))",
            }[lang]
        return {
            "en": f"the share of cases caught at least {h} h before the money left (ED({h}))",
            "nl": f"het aandeel zaken dat minstens {h} uur voordat het geld wegging is ontdekt (ED({h}))",
        }[lang]
    if key.startswith("prevented_eur"):
        return {"en": "euros prevented", "nl": "voorkomen schade in euro"}[lang]
    words = {
        "detected": {"en": "the share of cases detected", "nl": "het aandeel ontdekte zaken"},
        "roc_auc": {"en": "ROC-AUC", "nl": "ROC-AUC"},
        "ap": {"en": "average precision (AP)", "nl": "gemiddelde precisie (AP)"},
    }
    return words[key][lang] if key in words else key


def metric_axis(key: str, lang: Lang) -> str:
    """A metric as a short axis label ("caught before the money left")."""
    if match := re.fullmatch(r"ed_h(\d+(?:\.\d+)?)", key):
        h = match.group(1)
        if float(h) == 0:
            return {"en": "caught before the money left", "nl": "ontdekt voordat het geld wegging"}[lang]
        return {"en": f"caught ≥ {h} h before the money left", "nl": f"ontdekt ≥ {h} uur voor het wegsluizen"}[lang]
    if key == "detected":
        return {"en": "detected", "nl": "ontdekt"}[lang]
    return metric(key, lang)


def metric_kind(key: str) -> str:
    """How values of a metric are formatted: "share", "eur" or "score"."""
    if key.startswith("ed_h") or key == "detected":
        return "share"
    if key.startswith("prevented_eur"):
        return "eur"
    return "score"
