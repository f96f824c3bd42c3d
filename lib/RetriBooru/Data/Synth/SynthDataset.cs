using RetriBooru.Data.Ingest;

namespace RetriBooru.Data.Synth;

/// <summary>
/// The one-call synthetic dataset: generate the Danbooru-style source in <c>DIR/source</c>, build it into <c>DIR</c>
/// exactly like a real folder, and put the ground truth (<c>attributes.jsonl</c>) next to the records.
/// </summary>
public static class SynthDataset
{
    public const string SourceFolder = "source";

    public static BuildResult Create(string datasetDir, SynthOptions synth, BuildOptions? build = null, IProgress<DatasetProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        var sourceDir = Path.Combine(datasetDir, SourceFolder);
        var attributes = SynthGenerator.Generate(sourceDir, synth, progress, cancellationToken);
        var result = DatasetBuilder.Build(sourceDir, datasetDir, (build ?? new BuildOptions()) with { Seed = synth.Seed }, progress, cancellationToken);
        SynthAttributesFile.Write(Path.Combine(datasetDir, SynthAttributesFile.FileName), attributes);
        return result;
    }
}
