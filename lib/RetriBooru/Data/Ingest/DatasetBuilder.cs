using RetriBooru.Settings;
using System.Globalization;
using System.Text.Json;
using RetriBooru.Data.Retrieval;
using RetriBooru.Imaging;
using RetriBooru.Runtime;
using SkiaSharp;

namespace RetriBooru.Data.Ingest;

/// <summary>What a build produced; <see cref="Notes"/> says what happened to the output folder (for the log).</summary>
public sealed record BuildResult(IReadOnlyList<ImageRecord> Records, DatasetStats Stats, IReadOnlyDictionary<string, IReadOnlyList<TrainingExample>> Manifests, IReadOnlyList<BuildProblem> Problems)
{
    public IReadOnlyList<string> Notes { get; init; } = [];
}

/// <summary>
/// Builds a dataset folder (<see cref="DatasetLayout"/>) from a Danbooru-style source folder: scan, read tags, decode
/// and check every image, measure face box / clothing region / pHash, index identities, split by character, retrieve
/// references, check the manifests for leakage, write crops, records, manifests, stats and a per-file report.
/// One bad file never stops the build; it is reported and counted. The whole dataset is built in a staging folder
/// beside the output (<see cref="OutputFolder.Rebuild"/>) and swapped in only after every manifest passed its check,
/// so an interrupted or failed build (kill -9, Ctrl-C, a full disk) leaves an earlier dataset byte for byte as it was.
/// </summary>
public static class DatasetBuilder
{
    /// <summary>Per-image facts from the tag pass.</summary>
    sealed record Candidate(SourceImage Source, string Id, PostTags Tags, IReadOnlyList<string> ClothingTags);

    /// <summary>Per-image facts from the pixel pass.</summary>
    sealed record Measured(Candidate Candidate, int Width, int Height, ulong Hash, float[]? FaceBox, bool HasMask, string? ClothingColor);

    public static BuildResult Build(string sourceDir, string outDir, BuildOptions options, IProgress<DatasetProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        options.Validate();
        var source = Path.GetFullPath(sourceDir);
        var output = Path.GetFullPath(outDir);
        if (SafePath.IsInside(source, output) || source == output)
            throw new ArgumentException($"{outDir}: the output folder must not be inside the source folder {sourceDir} (the next build would ingest it)");
        return Replace(output, source, working => BuildInto(source, working, options, progress, cancellationToken), cancellationToken);
    }

    /// <summary>
    /// Builds a dataset with <paramref name="build"/> into a staging folder and swaps it in for <paramref name="outDir"/> when
    /// it returns; on any failure the staging folder is removed and the earlier dataset stays as it was.
    /// <paramref name="sourceInside"/> is a source folder that may already sit inside the output (the synthetic layout DIR/source).
    /// </summary>
    internal static BuildResult Replace(string outDir, string? sourceInside, Func<string, BuildResult> build, CancellationToken cancellationToken)
    {
        var output = Path.GetFullPath(outDir);
        ClaimOutputFolder(sourceInside, output);
        bool earlier = Directory.Exists(output) && Directory.EnumerateFileSystemEntries(output).Any();
        using var folder = OutputFolder.Rebuild(output);
        BuildResult result;
        try
        {
            AtomicFile.WriteAllText(Path.Combine(folder.WorkingPath, MarkerFile), "RetriBooru dataset folder: `retribooru dataset build` may replace it whole.\n");
            result = build(folder.WorkingPath);
            folder.Commit();
        }
        catch (Exception e)
        {
            try { folder.Abandon(); }
            catch (Exception cleanup) when (cleanup is IOException or UnauthorizedAccessException) { } // the next build removes it
            var unchanged = earlier ? $"the earlier dataset in {output} is unchanged" : $"{output} was not created";
            var cause = ExceptionCause.Of(e);
            if (cause is OperationCanceledException) throw new OperationCanceledException($"dataset build interrupted; {unchanged}", e, cancellationToken);
            if (cause is IOException io) throw new IOException($"dataset build stopped ({io.Message}); {unchanged}", e);
            throw;
        }
        var swapped = earlier ? $"replaced the earlier dataset in {output} (built in {folder.WorkingPath}, swapped in whole)" : $"created {output}";
        return result with { Notes = [.. folder.Notes, swapped] };
    }

    /// <summary>Marks a folder as a dataset this builder owns (a rebuild replaces it whole, so it must not be anything else).</summary>
    public const string MarkerFile = ".retribooru-dataset";

    /// <summary>
    /// The output folder must be new, empty, an earlier build (it has the marker), or hold nothing but the source folder
    /// being built (the synthetic layout DIR/source); anything else is refused so user files are never replaced.
    /// </summary>
    static void ClaimOutputFolder(string? source, string output)
    {
        if (Directory.Exists(output) && !File.Exists(Path.Combine(output, MarkerFile)))
        {
            var foreign = Directory.EnumerateFileSystemEntries(output).Where(e => Path.GetFullPath(e) != source).Take(3).ToList();
            if (foreign.Count > 0)
                throw new IOException($"{output}: folder is not empty and is not a dataset made by this builder (found {string.Join(", ", foreign.Select(Path.GetFileName))}); choose a new or empty --out folder");
        }
    }

    /// <summary>The build proper, writing into <paramref name="output"/> (a fresh staging folder).</summary>
    internal static BuildResult BuildInto(string source, string output, BuildOptions options, IProgress<DatasetProgress>? progress, CancellationToken cancellationToken)
    {
        var report = new BuildReport();
        var scan = SourceScanner.Scan(source, report, progress, cancellationToken);
        var candidates = ReadTags(scan, report);
        var measured = Measure(scan, candidates, output, options, report, progress, cancellationToken);
        var assignment = IdentityIndex.Assign(measured.Select(m => new IdentityCandidate(m.Candidate.Id, m.Candidate.Tags.Characters[0], m.Candidate.ClothingTags, m.ClothingColor)));
        var sourceOf = measured.ToDictionary(m => m.Candidate.Id, m => m.Candidate.Source.RelativePath, StringComparer.Ordinal);
        foreach (var (id, code, message) in assignment.Rejected) report.Reject(sourceOf[id], code, message, id);
        var unsplit = measured.Where(m => assignment.ClothingIds.ContainsKey(m.Candidate.Id))
            .Select(m => ToRecord(m, assignment)).OrderBy(r => r.Id, StringComparer.Ordinal).ToList();
        var split = Splits.Assign(unsplit, options.Seed, options.UnseenFraction, options.HeldoutFraction);
        var records = unsplit.Select(r => r with { Split = split[r.Id] }).ToList();

        var manifests = new SortedDictionary<string, IReadOnlyList<TrainingExample>>(StringComparer.Ordinal);
        var manifestStats = new SortedDictionary<string, ManifestStats>(StringComparer.Ordinal);
        var retrieval = new RetrievalOptions
        {
            FaceReferences = options.FaceReferences, ClothesReferences = options.ClothesReferences,
            NearDuplicateThreshold = options.NearDuplicateThreshold, Seed = options.Seed,
        };
        foreach (var referenceScheme in options.Schemes.Distinct().Order())
        {
            string scheme = referenceScheme.Name();
            progress?.Report(new DatasetProgress("retrieve", 0, 1, $"scheme {scheme}"));
            var (examples, skipped, repeated) = ReferenceRetrieval.Build(records, referenceScheme, retrieval);
            var leakage = LeakageCheck.Check(examples, records, options.NearDuplicateThreshold);
            if (referenceScheme == ReferenceScheme.B && !leakage.IsLeakageFree)
                throw new InvalidOperationException($"scheme b manifest failed the leakage check, nothing written: {string.Join("; ", leakage.Violations.Take(5))}");
            manifests[scheme] = examples;
            manifestStats[scheme] = new ManifestStats
            {
                File = DatasetLayout.ManifestPath(referenceScheme),
                Examples = examples.Count,
                ExamplesBySplit = new(examples.GroupBy(e => e.Split).ToDictionary(g => g.Key, g => g.Count()), StringComparer.Ordinal),
                Skipped = new(skipped.GroupBy(s => s.Code).ToDictionary(g => g.Key, g => g.Count()), StringComparer.Ordinal),
                RepeatedReferences = repeated,
                Leakage = leakage,
            };
            progress?.Report(new DatasetProgress("retrieve", 1, 1, $"scheme {scheme}"));
        }

        WriteCrops(output, records, manifests.Values, options, progress, cancellationToken);
        var stats = Stats(scan, records, report, manifestStats, options);
        // Records, manifests and stats last, after every check passed (the staging folder becomes the dataset only when complete).
        AtomicFile.WriteAllLines(Path.Combine(output, DatasetLayout.RecordsFile), records.Select(r => JsonSerializer.Serialize(r, WorkbenchJson.Lines)));
        foreach (var (scheme, examples) in manifests) ManifestReader.Write(Path.Combine(output, DatasetLayout.ManifestPath(Words.Parse<ReferenceScheme>(scheme))), examples);
        AtomicFile.WriteAllText(Path.Combine(output, DatasetLayout.ManifestsFolder, DatasetLayout.StatsFile), JsonSerializer.Serialize(stats, DatasetStats.JsonOptions) + "\n");
        report.Write(Path.Combine(output, BuildReport.FileName));
        return new BuildResult(records, stats, manifests, report.Problems);
    }

    static List<Candidate> ReadTags(SourceScan scan, BuildReport report)
    {
        var candidates = new List<Candidate>();
        var usedIds = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var image in scan.Images)
        {
            PostTags? tags = null;
            string? tagSource = null;
            try
            {
                if (image.PostFile is not null) (tags, tagSource) = (PostTagParser.ParsePostFile(scan.FullPath(image.PostFile)), image.PostFile);
                else if (scan.PostsByFile.TryGetValue(image.RelativePath, out var byFile)) (tags, tagSource) = (byFile.Tags, $"{byFile.SourceFile}:{byFile.Line}");
                else if (scan.PostsById.TryGetValue(image.Stem, out var byId)) (tags, tagSource) = (byId.Tags, $"{byId.SourceFile}:{byId.Line}");
                else if (scan.PostsByMd5.TryGetValue(image.Stem, out var byMd5)) (tags, tagSource) = (byMd5.Tags, $"{byMd5.SourceFile}:{byMd5.Line}");
                else if (image.TagFile is not null) (tags, tagSource) = (PostTagParser.ParseSidecarFile(scan.FullPath(image.TagFile)), image.TagFile);
            }
            catch (TagFormatException e) { report.Reject(image.RelativePath, e.Code, $"{image.PostFile ?? image.TagFile}: {e.Message}"); continue; }
            catch (JsonException e) { report.Reject(image.RelativePath, "malformed_metadata", $"{image.PostFile}: malformed JSON: {e.Message}"); continue; }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { report.Reject(image.RelativePath, "unreadable", $"cannot read tags: {e.Message}"); continue; }
            if (tags is null) { report.Reject(image.RelativePath, "no_tags", "no tags: no sidecar .txt, no .json and no batch metadata entry for this file"); continue; }

            var id = SanitiseId(tags.PostId ?? image.Stem);
            if (usedIds.TryGetValue(id, out var first)) { report.Reject(image.RelativePath, "duplicate_id", $"id {id} is already used by {first}", id); continue; }
            usedIds[id] = image.RelativePath;
            if (tags.DroppedTags > 0)
                report.Warn(tagSource!, "too_many_tags", $"{tags.DroppedTags:N0} tags left out: a post keeps at most {PostTagParser.MaxTagsPerImage:N0} (character, copyright and artist tags first)", id);
            if (tags.Characters.Count == 0) { report.Reject(image.RelativePath, "no_character_tag", "no character tag, so no identity", id); continue; }
            if (tags.Characters.Count > 1) { report.Reject(image.RelativePath, "multiple_characters", $"{tags.Characters.Count} character tags ({string.Join(", ", tags.Characters)}): identity is ambiguous", id); continue; }
            var clothing = ClothingTags.Extract(tags.General);
            if (clothing.Count == 0) { report.Reject(image.RelativePath, "no_clothing_tags", "no clothing tags, so the clothing identity cannot be determined", id); continue; }
            candidates.Add(new Candidate(image, id, tags, clothing));
        }
        return candidates;
    }

    static string SanitiseId(string raw)
    {
        var chars = raw.Select(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.' ? c : '_').ToArray();
        var id = new string(chars).Trim('.');
        return id.Length == 0 ? "_" : id;
    }

    static List<Measured> Measure(SourceScan scan, List<Candidate> candidates, string output, BuildOptions options, BuildReport report,
        IProgress<DatasetProgress>? progress, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(Path.Combine(output, DatasetLayout.ImagesFolder));
        Directory.CreateDirectory(Path.Combine(output, DatasetLayout.MasksFolder));
        var results = new Measured?[candidates.Count];
        var counter = new ProgressCounter(progress, "ingest", candidates.Count);
        counter.Start();
        Parallel.For(0, candidates.Count, new ParallelOptions { CancellationToken = cancellationToken, MaxDegreeOfParallelism = Environment.ProcessorCount }, i =>
        {
            results[i] = MeasureOne(scan, candidates[i], output, options, report);
            counter.Step(candidates[i].Id);
        });
        return results.Where(r => r is not null).Select(r => r!).ToList();
    }

    static Measured? MeasureOne(SourceScan scan, Candidate candidate, string output, BuildOptions options, BuildReport report)
    {
        var rel = candidate.Source.RelativePath;
        var (bitmap, problem) = ImageProbe.TryDecode(scan.FullPath(rel), options.MaxPixels);
        if (bitmap is null)
        {
            report.Reject(rel, problem!.Code, problem.Code == "too_many_pixels" ? problem.Message + "; raise --max-pixels to accept it" : problem.Message, candidate.Id);
            return null;
        }
        using (bitmap)
        {
            int w = bitmap.Width, h = bitmap.Height;
            float[]? face = candidate.Source.FaceFile is null ? null : ReadFaceBox(scan, candidate.Source.FaceFile, report, candidate.Id);
            bool[]? mask = candidate.Source.MaskFile is null ? null : ReadMask(scan, candidate.Source.MaskFile, w, h, options.MaxPixels, report, candidate.Id);
            string? color = null;
            if (mask is not null)
            {
                var region = ClothingRegion(mask, face, w, h);
                var (name, share, pixels) = ColorNames.Dominant(bitmap, region);
                double fraction = (double)pixels / (w * h);
                if (fraction < options.MinClothingFraction)
                {
                    report.Reject(rel, "clothing_region_too_small", $"clothing region (mask minus face box) covers {fraction:P1} of the image, under {options.MinClothingFraction:P1}", candidate.Id);
                    return null;
                }
                if (share < options.MinDominantShare)
                {
                    report.Reject(rel, "no_dominant_clothing_color", $"no dominant clothing colour: the commonest ({name}) covers {share:P0} of the clothing region, under {options.MinDominantShare:P0}", candidate.Id);
                    return null;
                }
                color = name;
                var maskBitmap = new SKBitmap(new SKImageInfo(w, h, SKColorType.Gray8, SKAlphaType.Opaque));
                using (maskBitmap)
                {
                    var bytes = mask.Select(m => m ? (byte)255 : (byte)0).ToArray();
                    System.Runtime.InteropServices.Marshal.Copy(bytes, 0, maskBitmap.GetPixels(), bytes.Length);
                    BulkFile.WriteAllBytes(ManifestReader.Resolve(output, $"{DatasetLayout.MasksFolder}/{candidate.Id}.png"), ImageTensor.EncodePng(maskBitmap));
                }
            }
            var hash = PerceptualHash.PHash(bitmap);
            BulkFile.WriteAllBytes(ManifestReader.Resolve(output, $"{DatasetLayout.ImagesFolder}/{candidate.Id}.png"), ImageTensor.EncodePng(bitmap));
            return new Measured(candidate, w, h, hash, face, mask is not null, color);
        }
    }

    /// <summary>Clothing region: figure mask minus face box (the whole figure when there is no face box).</summary>
    internal static bool[] ClothingRegion(bool[] mask, float[]? face, int w, int h)
    {
        var region = (bool[])mask.Clone();
        if (face is null) return region;
        var box = Crops.BoxToPixels(face, w, h);
        for (int y = box.Top; y < box.Bottom; y++)
            for (int x = box.Left; x < box.Right; x++) region[y * w + x] = false;
        return region;
    }

    static float[]? ReadFaceBox(SourceScan scan, string rel, BuildReport report, string id)
    {
        try
        {
            var parts = File.ReadAllText(scan.FullPath(rel)).Split([' ', ',', '\t', '\n', '\r'], StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length != 4) throw new FormatException($"expected 4 numbers (x y w h), found {parts.Length}");
            var v = parts.Select(p => float.Parse(p, NumberStyles.Float, CultureInfo.InvariantCulture)).ToArray();
            if (v.Any(x => !float.IsFinite(x) || x < 0 || x > 1) || v[2] <= 0 || v[3] <= 0 || v[0] + v[2] > 1.0001f || v[1] + v[3] > 1.0001f)
                throw new FormatException($"box ({string.Join(", ", parts)}) is not a normalised x y w h inside the image");
            return v;
        }
        catch (Exception e) when (e is FormatException or IOException or OverflowException)
        {
            report.Warn(rel, "bad_face_box", $"face box ignored: {e.Message}", id);
            return null;
        }
    }

    static bool[]? ReadMask(SourceScan scan, string rel, int w, int h, long maxPixels, BuildReport report, string id)
    {
        var (bitmap, problem) = ImageProbe.TryDecode(scan.FullPath(rel), maxPixels);
        if (bitmap is null) { report.Warn(rel, "bad_mask", $"mask ignored: {problem!.Message}", id); return null; }
        using (bitmap)
        {
            if (bitmap.Width != w || bitmap.Height != h)
            {
                report.Warn(rel, "bad_mask", $"mask ignored: its size {bitmap.Width}x{bitmap.Height} differs from the image's {w}x{h}", id);
                return null;
            }
            var bytes = bitmap.Bytes;
            var mask = new bool[w * h];
            for (int i = 0; i < mask.Length; i++) mask[i] = bytes[(i / w) * bitmap.RowBytes + (i % w) * 4] >= 128;
            if (!mask.Any(m => m)) { report.Warn(rel, "bad_mask", "mask ignored: it is empty (no figure pixel)", id); return null; }
            return mask;
        }
    }

    static ImageRecord ToRecord(Measured m, IdentityAssignment assignment)
    {
        var tags = m.Candidate.Tags;
        var character = tags.Characters[0];
        // The prompt is the Danbooru tag string minus artist and meta tags: character, copyrights, general tags.
        var prompt = string.Join(", ", new[] { character }.Concat(tags.Copyrights).Concat(tags.General));
        return new ImageRecord
        {
            Id = m.Candidate.Id,
            Image = $"{DatasetLayout.ImagesFolder}/{m.Candidate.Id}.png",
            Mask = m.HasMask ? $"{DatasetLayout.MasksFolder}/{m.Candidate.Id}.png" : null,
            Character = character,
            Artists = tags.Artists,
            FaceBox = m.FaceBox,
            Clothes = m.Candidate.ClothingTags,
            ClothingId = assignment.ClothingIds[m.Candidate.Id],
            Similar = assignment.Similar[m.Candidate.Id],
            Prompts = prompt,
            ClothingColor = m.ClothingColor,
            Phash = PerceptualHash.ToHex(m.Hash),
            Source = m.Candidate.Source.RelativePath,
            Width = m.Width,
            Height = m.Height,
        };
    }

    static void WriteCrops(string output, IReadOnlyList<ImageRecord> records, IEnumerable<IReadOnlyList<TrainingExample>> manifests, BuildOptions options,
        IProgress<DatasetProgress>? progress, CancellationToken cancellationToken)
    {
        var byId = records.ToDictionary(r => r.Id, StringComparer.Ordinal);
        var requests = manifests.SelectMany(m => m).SelectMany(e => e.References).Select(ReferenceRetrieval.RequestOf)
            .Distinct().OrderBy(r => r.CropId, StringComparer.Ordinal).GroupBy(r => r.SourceId).ToList();
        Directory.CreateDirectory(Path.Combine(output, DatasetLayout.CropsFolder));
        var counter = new ProgressCounter(progress, "crops", requests.Count);
        counter.Start();
        Parallel.ForEach(requests, new ParallelOptions { CancellationToken = cancellationToken, MaxDegreeOfParallelism = Environment.ProcessorCount }, group =>
        {
            var record = byId[group.Key];
            var (bitmap, problem) = ImageProbe.TryDecode(ManifestReader.Resolve(output, record.Image), long.MaxValue);
            if (bitmap is null) throw new IOException($"{record.Image}: written by this build but unreadable: {problem!.Message}");
            using (bitmap)
            {
                bool[]? mask = null;
                if (record.Mask is not null)
                {
                    var (maskBitmap, maskProblem) = ImageProbe.TryDecode(ManifestReader.Resolve(output, record.Mask), long.MaxValue);
                    if (maskBitmap is null) throw new IOException($"{record.Mask}: written by this build but unreadable: {maskProblem!.Message}");
                    using (maskBitmap)
                    {
                        var bytes = maskBitmap.Bytes;
                        mask = new bool[bitmap.Width * bitmap.Height];
                        for (int i = 0; i < mask.Length; i++) mask[i] = bytes[(i / bitmap.Width) * maskBitmap.RowBytes + (i % bitmap.Width) * 4] >= 128;
                    }
                }
                int size = options.CropSize > 0 ? options.CropSize : bitmap.Width;
                foreach (var request in group)
                {
                    using var crop = request.Concept == Concept.Face ? FaceCrop(bitmap, record, size, request.Mirror) : ClothesCrop(bitmap, record, mask, size, request.Mirror);
                    BulkFile.WriteAllBytes(ManifestReader.Resolve(output, request.RelativePath), ImageTensor.EncodePng(crop));
                }
            }
            counter.Step(group.Key);
        });
    }

    /// <summary>Face crop: the face box grown by 20% (hair and chin included).</summary>
    static SKBitmap FaceCrop(SKBitmap bitmap, ImageRecord record, int size, bool mirror) =>
        Crops.Cut(bitmap, Crops.BoxToPixels(record.FaceBox ?? throw new InvalidOperationException($"{record.Id}: face reference without a face box"), bitmap.Width, bitmap.Height, 1.2f), size, mirror: mirror);

    /// <summary>
    /// Clothes crop: the largest connected part of the clothing region (mask minus face box), everything else white. Without a mask: the part of
    /// the image below the face box (or the whole image without a face box), unmasked.
    /// </summary>
    static SKBitmap ClothesCrop(SKBitmap bitmap, ImageRecord record, bool[]? mask, int size, bool mirror)
    {
        int w = bitmap.Width, h = bitmap.Height;
        if (mask is not null)
        {
            var region = Crops.LargestComponent(ClothingRegion(mask, record.FaceBox, w, h), w);
            var bounds = Crops.Bounds(region, w) ?? new SKRectI(0, 0, w, h);
            return Crops.Cut(bitmap, bounds, size, region, mirror);
        }
        if (record.FaceBox is float[] face)
        {
            var box = Crops.BoxToPixels(face, w, h);
            int top = Math.Min(box.Bottom, h - 1);
            return Crops.Cut(bitmap, new SKRectI(0, top, w, h), size, mirror: mirror);
        }
        return Crops.Cut(bitmap, new SKRectI(0, 0, w, h), size, mirror: mirror);
    }

    static DatasetStats Stats(SourceScan scan, IReadOnlyList<ImageRecord> records, BuildReport report, SortedDictionary<string, ManifestStats> manifests, BuildOptions options)
    {
        var histogram = new SortedDictionary<string, int>(StringComparer.Ordinal);
        foreach (var r in records)
        {
            var bin = DatasetStats.HistogramBin(r.Similar.Count);
            histogram[bin] = histogram.GetValueOrDefault(bin) + 1;
        }
        var splits = new SortedDictionary<string, SplitStats>(StringComparer.Ordinal);
        foreach (var name in SplitNames.All)
        {
            var inSplit = records.Where(r => r.Split == name).ToList();
            splits[name] = new SplitStats(inSplit.Count, inSplit.Select(r => r.Character).Distinct().Count());
        }
        return new DatasetStats
        {
            ImagesFound = scan.Images.Count,
            Images = records.Count,
            Characters = records.Select(r => r.Character).Distinct().Count(),
            ClothingIdentities = records.Select(r => (r.Character, r.ClothingId)).Distinct().Count(),
            WithMask = records.Count(r => r.Mask is not null),
            WithFaceBox = records.Count(r => r.FaceBox is not null),
            Splits = splits,
            Rejected = report.Counts(ProblemSeverity.Rejected),
            Warnings = report.Counts(ProblemSeverity.Warning),
            IgnoredFiles = report.Counts(ProblemSeverity.Ignored),
            SimilarHistogram = histogram,
            Manifests = manifests,
            Options = options,
        };
    }
}
