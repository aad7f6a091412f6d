"""Rule generate: Pythia 8 + FastJet jets of one shard, written as JetClass-layout ROOT."""

from jetimage.files import write_jets_root
from jetimage.generate import GeneratorSettings, generate_jets
from jetimage.logs import setup

log = setup(snakemake.log[0], "jetimage.generate")
params = snakemake.params.settings
settings = GeneratorSettings.from_dict(params["settings"])
log.info(
    "process %s, %d events, seed %d, settings %s",
    settings.process,
    params["events"],
    params["seed"],
    settings,
)


def progress(events: int, jets: int, seconds: float) -> None:
    log.info(
        "%d/%d events, %d jets kept, %.0f events/s, %.0f jets/s",
        events,
        params["events"],
        jets,
        events / seconds,
        jets / seconds,
    )


columns = generate_jets(
    settings,
    n_events=params["events"],
    seed=params["seed"],
    batch_size=params["batch_size"],
    progress=progress,
)
if len(columns["jet_pt"]) == 0:
    jets = settings.jets
    msg = (
        f"{params['events']} events of process {settings.process!r} gave no jet "
        f"in the window {jets.pt_min} < pT < {jets.pt_max} GeV, |eta| < "
        f"{jets.abs_eta_max} (generation/jets) from pT-hat {settings.pt_hat_min}-"
        f"{settings.pt_hat_max} GeV (generation/pt_hat); no shard written"
    )
    raise RuntimeError(msg)
write_jets_root(snakemake.output[0], columns)
log.info("wrote %d jets to %s", len(columns["jet_pt"]), snakemake.output[0])
