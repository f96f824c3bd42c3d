using RetriBooru.Data.Ingest;

namespace RetriBooru.Data.Synth;

/// <summary>
/// The one-call synthetic dataset: generate the Danbooru-style source in <c>DIR/source</c>, build it into <c>DIR</c>
/// exactly like a real folder, and put the ground truth (<c>attributes.jsonl</c>) next to the records. Source, dataset and
/// ground truth are made together in a staging folder beside <c>DIR</c> and swapped in whole, like any dataset build.
/// </summary>
public static class SynthDataset
{
    public const string SourceFolder = "source";

    public static BuildResult Create(string datasetDir, SynthOptions synth, BuildOptions? build = null, IProgress<DatasetProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        synth.Validate();
        var buildOptions = (build ?? new BuildOptions()) with { Seed = synth.Seed };
        buildOptions.Validate();
        var output = Path.GetFullPath(datasetDir);
        return DatasetBuilder.Replace(output, Path.Combine(output, SourceFolder), working =>
        {
            var sourceDir = Path.Combine(working, SourceFolder);
            var attributes = SynthGenerator.Generate(sourceDir, synth, progress, cancellationToken);
            var result = DatasetBuilder.BuildInto(sourceDir, working, buildOptions, progress, cancellationToken);
            SynthAttributesFile.Write(Path.Combine(working, SynthAttributesFile.FileName), attributes);
            return result;
        }, cancellationToken);
    }
}
