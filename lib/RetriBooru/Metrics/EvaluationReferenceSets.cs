using RetriBooru.Settings;
using RetriBooru.Data;
using RetriBooru.Diffusion;
using RetriBooru.Imaging;

namespace RetriBooru.Metrics;

/// <summary>
/// Stage 1 of an evaluation: the reference sets of a split, chosen from a manifest (<see cref="EvaluationSets.Choose"/>),
/// and the manifest they come from (image quality compares with its real pictures).
/// </summary>
sealed record ReferenceSetChoice(string DatasetDir, ReferenceScheme Scheme, string ManifestPath, IReadOnlyList<TrainingExample> Manifest, IReadOnlyList<EvaluationSet> Sets)
{
    /// <summary>Reads the manifest (the options' or the scheme's) and chooses the sets; fails when the split has none.</summary>
    public static ReferenceSetChoice Choose(string datasetDir, EvaluationOptions options, List<string> notes)
    {
        var scheme = options.Scheme;
        var manifestPath = options.ManifestPath ?? Path.Combine(datasetDir, DatasetLayout.ManifestPath(scheme));
        var manifest = ManifestReader.Read(manifestPath);
        var records = DatasetLayout.ReadRecords(datasetDir);
        var sets = EvaluationSets.Choose(manifest, records, options.Split, options.ReferenceSets, options.Seed);
        if (sets.Count == 0)
            throw new InvalidDataException($"{manifestPath}: no reference set for split '{options.Split.Name()}' (it draws on manifest split '{EvaluationSets.ManifestSplit(options.Split)}'{(options.Split == EvaluationSplit.Composition ? " and needs characters with face crops in another outfit" : "")})");
        if (sets.Count < options.ReferenceSets) notes.Add($"only {sets.Count} of the {options.ReferenceSets} requested reference sets exist for split '{options.Split.Name()}'");
        return new ReferenceSetChoice(datasetDir, scheme, manifestPath, manifest, sets);
    }

    /// <summary>
    /// The set's references, read for scoring and for conditioning at <paramref name="imageSize"/>; null (and a note)
    /// when a file cannot be read or its path leaves the dataset folder. The crops are tensors of the caller's dispose scope.
    /// </summary>
    public LoadedReferenceSet? TryLoad(EvaluationSet set, int imageSize, PromptView promptView, List<string> notes)
    {
        var prompt = PromptViews.Apply(promptView, set.Prompt, set.Character);
        var references = new List<ScoringReference>();
        var crops = new List<ReferenceCrop>();
        List<string> paths;
        try
        {
            // A reference path that leaves the dataset is refused like an unreadable file: this set is skipped, the rest is scored.
            paths = set.References.Select(r => ManifestReader.Resolve(DatasetDir, r.Image)).ToList();
            for (int i = 0; i < set.References.Count; i++)
            {
                references.Add(new ScoringReference(ImageTensor.LoadBitmap(paths[i]), set.References[i].Concept));
                crops.Add(new ReferenceCrop(ImageTensor.Load(paths[i], imageSize), set.References[i].Concept, set.References[i].SourceId));
            }
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
        {
            foreach (var r in references) r.Image.Dispose();
            notes.Add($"reference set {set.Id} skipped: {e.Message}");
            return null;
        }
        return new LoadedReferenceSet(set, prompt, paths, references, crops);
    }
}

/// <summary>
/// One reference set ready to sample and score: the prompt it is generated with (its prompt view), the reference files,
/// the references as read for scoring (disposed with this) and as crops the model is conditioned on.
/// </summary>
sealed class LoadedReferenceSet(EvaluationSet set, string prompt, IReadOnlyList<string> paths, IReadOnlyList<ScoringReference> references, IReadOnlyList<ReferenceCrop> crops) : IDisposable
{
    public EvaluationSet Set { get; } = set;
    public string Prompt { get; } = prompt;
    public IReadOnlyList<string> Paths { get; } = paths;
    public IReadOnlyList<ScoringReference> References { get; } = references;
    public IReadOnlyList<ReferenceCrop> Crops { get; } = crops;

    public void Dispose()
    {
        foreach (var r in References) r.Image.Dispose();
    }
}
