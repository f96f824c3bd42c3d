using RetriBooru.Settings;
using System.Text.Json.Nodes;
using RetriBooru.Data;
using RetriBooru.Data.Synth;
using RetriBooru.Diffusion;
using RetriBooru.Imaging;
using RetriBooru.Metrics;
using RetriBooru.Metrics.Vqa;
using RetriBooru.Modeling;
using RetriBooru.Runtime;
using Spectre.Console.Testing;
using Xunit;
using static TorchSharp.torch;

namespace RetriBooru.Tests;

/// <summary>A tiny 32 px synthetic world, a fresh tiny base model and one evaluation suite, shared by the evaluation tests.</summary>
public sealed class EvaluationWorld : IDisposable
{
    readonly TempDir _dir = new();
    public string Dataset { get; }
    public EvaluationSuite Suite { get; }
    public DiffusionModel Model { get; }

    public static readonly EvaluationSuiteOptions SuiteOptions = new()
    {
        // The whole-image view keeps the shared fixture fast; the best-window view (the default) runs in the ground-truth-free test.
        // Nothing cached in the shared dataset: the tests that copy it compute every yardstick (the cache tests turn it on in a copy).
        IdentityBaselineExamples = 6, LeakageBaselineExamples = 2, CacheProbe = false, CacheBaselines = false, IdentityView = IdentityView.Whole,
        Probe = new AttributeProbeOptions { Epochs = 2, ImageSize = 32, Channels = [8, 16] },
        // The dataset's own pictures keep the shared fixture fast; the world-trained probe has its own test.
        ProbeWorldPictures = 0,
    };

    public EvaluationWorld()
    {
        Torch.Load();
        Dataset = Path.Combine(_dir.Path, "data");
        SynthDataset.Create(Dataset, new SynthOptions { Characters = 4, OutfitsPerCharacter = 2, ImagesPerCharacter = 12, Size = 32, Seed = 5 });
        Suite = EvaluationSuite.Create(Dataset, SuiteOptions, seed: 3);
        Model = BaseModelFactory.Create(ModelConfigs.Tiny, new DatasetFolderSource(Dataset, 32), 1);
    }

    public string NewFolder() => Path.Combine(_dir.Path, Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        Suite.Dispose();
        Model.Dispose();
        _dir.Dispose();
    }
}

public class EvaluationTests(EvaluationWorld world, Xunit.Abstractions.ITestOutputHelper output) : IClassFixture<EvaluationWorld>
{
    static readonly EvaluationOptions Small = new()
    {
        Split = EvaluationSplit.Seen, ReferenceSets = 2, SamplesPerReference = 2, Seed = 7, BootstrapResamples = 200,
        Sampling = new ReferenceSamplingOptions { Steps = 2 },
    };

    [Fact]
    public void Evaluate_writes_one_row_per_sample_with_summaries_and_repeats_exactly()
    {
        var net = new RetriNet(world.Model.Unet);
        var outA = world.NewFolder();
        var result = world.Suite.Evaluate(new EvaluatedModel("retrinet", world.Model, net), world.Dataset, Small, outA);

        var sampleRows = result.Rows.Where(r => r.SampleIndex is not null).ToList();
        Assert.Equal(result.Sets.Count * Small.SamplesPerReference, sampleRows.Count);
        Assert.Equal(2, result.Sets.Count);
        Assert.Equal(result.Sets.Count, result.Rows.Count(r => r.SampleIndex is null && r.Scores.ContainsKey("swd")));
        foreach (var key in new[] { "identity_face", "identity_clothes", "identity", "prompt_consistency", "swd", "leakage",
                     "attribute_agreement", "attribute_agreement_face", "attribute_agreement_clothes" })
            Assert.True(result.Summary.ContainsKey(key), $"summary lacks {key}; has {string.Join(", ", result.Summary.Keys)}");
        foreach (var s in result.Summary.Values) Assert.True(s.Lower <= s.Mean && s.Mean <= s.Upper, s.ToString());

        // Seeds: distinct, recorded, and the recorded seed regenerates the saved PNG (generated in its set's batch, so
        // equal to the alone-generated sample up to float rounding: at most one level of 255 per channel).
        Assert.Equal(sampleRows.Count, sampleRows.Select(r => r.Seed).Distinct().Count());
        var row = sampleRows[0];
        Assert.Equal(EvaluationSuite.SampleSeed(Small.Seed, row.ReferenceSetId, row.SampleIndex!.Value), row.Seed);
        var savedPath = Path.Combine(outA, row.ImagePath!);
        Assert.True(File.Exists(savedPath));
        var set = result.Sets.Single(s => s.SetId == row.ReferenceSetId);
        var manifest = ManifestReader.Read(world.Dataset, ReferenceScheme.B);
        var example = manifest.Single(e => e.Target == row.ReferenceSetId);
        using (NewDisposeScope())
        {
            var crops = example.References.Select(r => new ReferenceCrop(ImageTensor.Load(ManifestReader.Resolve(world.Dataset, r.Image), 32), r.Concept, r.SourceId)).ToList();
            // Generations get the context view of the prompt (no identity tags) by default.
            var prompt = PromptViews.Apply(Small.PromptView, example.Prompt, example.Character);
            Assert.DoesNotContain(example.Character, prompt);
            Assert.DoesNotContain("_hair", prompt);
            var again = ReferenceSampler.Generate(world.Model, net, [prompt], [crops], Small.Sampling with { Seed = row.Seed!.Value });
            using var bitmap = ImageTensor.ToBitmap(again[0]);
            using var saved = ImageTensor.LoadBitmap(savedPath);
            var (a, b) = (bitmap.Bytes, saved.Bytes);
            Assert.Equal(a.Length, b.Length);
            Assert.True(a.Zip(b).Max(p => Math.Abs(p.First - p.Second)) <= 1, "the batched sample differs from its alone-generated self by more than float rounding");
            Assert.True(a.Zip(b).Count(p => p.First != p.Second) <= a.Length / 100, "more than 1% of the channel values differ");
        }
        Assert.Equal(example.References.Select(r => ManifestReader.Resolve(world.Dataset, r.Image)), set.ReferencePaths);

        var csv = File.ReadAllLines(Path.Combine(outA, "results.csv"));
        Assert.Equal(sampleRows.Count, csv.Count(l => l.StartsWith("sample,", StringComparison.Ordinal)));
        Assert.Single(csv, l => l.StartsWith("summary,retrinet,seen,", StringComparison.Ordinal));
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(outA, "results.json")))!;
        Assert.Equal("retrinet", (string?)json["config"]!["model"]);
        Assert.Equal(7L, (long)json["config"]!["seed"]!);
        Assert.NotNull(json["config"]!["suite"]!["probe_accuracy"]);
        Assert.Equal("context", (string?)json["config"]!["prompt_view"]);
        var baseline = json["config"]!["attribute_agreement_baseline"]!;
        Assert.InRange((double)baseline["value"]!, 0, 1);
        Assert.InRange((double)baseline["same_character_mean"]!, 0, 1);
        Assert.True((int)baseline["pairs"]! > 0);

        // Same model and options into another folder: identical rows and summaries, byte for byte.
        var outB = world.NewFolder();
        world.Suite.Evaluate(new EvaluatedModel("retrinet", world.Model, net), world.Dataset, Small, outB);
        Assert.Equal(File.ReadAllText(Path.Combine(outA, "results.json")), File.ReadAllText(Path.Combine(outB, "results.json")));
        Assert.Equal(File.ReadAllText(Path.Combine(outA, "results.csv")), File.ReadAllText(Path.Combine(outB, "results.csv")));
    }

    [Fact]
    public void Evaluate_scores_image_quality_against_the_split_and_every_model_shares_its_reference_points()
    {
        // The unseen split: its character's 12 pictures are the real side (the tiny world holds out only 3 seen-character pictures, and KID needs 4).
        var unseen = Small with { Split = EvaluationSplit.Unseen };
        var outDir = world.NewFolder();
        var result = world.Suite.Evaluate(new EvaluatedModel("retrinet", world.Model, new RetriNet(world.Model.Unet)), world.Dataset, unseen, outDir);
        int samples = result.Rows.Count(r => r.SampleIndex is not null);
        foreach (var key in new[] { "kid", "kid_floor", "kid_ceiling", "kid_position", "readability" })
            Assert.True(result.Summary.ContainsKey(key), $"summary lacks {key}; notes: {string.Join(" | ", result.Notes)}");
        var kid = result.Score("kid")!;
        var floor = result.Score("kid_floor")!;
        var ceiling = result.Score("kid_ceiling")!;
        var readability = result.Score("readability")!;
        Assert.Equal(samples, kid.Count);
        Assert.Equal(samples, readability.Count);
        Assert.True(floor.Mean < ceiling.Mean, $"floor {floor} < ceiling {ceiling}");
        Assert.Equal((floor.Mean, floor.Mean), (floor.Lower, floor.Upper));
        Assert.Equal((ceiling.Mean, ceiling.Mean), (ceiling.Lower, ceiling.Upper));
        Assert.True(readability.Lower <= readability.Mean && readability.Mean <= readability.Upper, readability.ToString());

        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "results.json")))!;
        Assert.Equal("retribooru-evaluate/2", (string?)json["config"]!["protocol"]);
        var quality = json["quality"]!;
        output.WriteLine(quality.ToJsonString());
        Assert.Equal(SplitNames.Unseen, (string?)quality["manifest_split"]);
        var realImages = ManifestReader.Read(world.Dataset, ReferenceScheme.B).Where(e => e.Split == SplitNames.Unseen).Select(e => e.Target).Distinct().Count();
        Assert.Equal(realImages, (int)quality["real_images"]!);
        Assert.Equal(kid.Mean, (double)quality["kid"]!["value"]!);
        Assert.Equal(kid.Lower, (double)quality["kid"]!["ci_low"]!);
        Assert.Equal(samples, (int)quality["kid"]!["n"]!);
        Assert.Equal(floor.Mean, (double)quality["kid_floor"]!["value"]!);
        Assert.Equal(ceiling.Mean, (double)quality["kid_ceiling"]!["value"]!);
        Assert.Equal(result.Score("kid_position")!.Mean, (double)quality["kid_position"]!, 12);
        var read = quality["readability"]!;
        Assert.Equal(readability.Mean, (double)read["value"]!);
        // Readability is the samples' mean prompt consistency over the real images' mean.
        Assert.Equal(result.Score("prompt_consistency")!.Mean / (double)read["real_mean"]!, readability.Mean, 12);
        Assert.Equal(kid.Mean, (double)json["summaries"]![0]!["scores"]!["kid"]!["mean"]!);

        var csv = File.ReadAllLines(Path.Combine(outDir, "results.csv"));
        var header = csv[0].Split(',').ToList();
        var summaryRow = csv.Single(l => l.StartsWith("summary,", StringComparison.Ordinal)).Split(',');
        foreach (var column in new[] { "kid", "kid_floor", "kid_ceiling", "kid_position", "readability" })
            Assert.True(header.Contains(column) && summaryRow[header.IndexOf(column)] != "", $"results.csv summary lacks {column}");

        // Another model on the same split is measured against the same, cached reference points.
        var other = world.Suite.Evaluate(new EvaluatedModel("text-only", world.Model, new TextOnlyModel(world.Model.Unet)), world.Dataset, unseen with { SaveImages = false }, world.NewFolder());
        Assert.Equal(floor, other.Score("kid_floor"));
        Assert.Equal(ceiling, other.Score("kid_ceiling"));
    }

    [Fact]
    public void A_sample_generated_in_a_batch_with_its_own_seed_matches_itself_generated_alone()
    {
        var net = new RetriNet(world.Model.Unet);
        var example = ManifestReader.Read(world.Dataset, ReferenceScheme.B).First();
        using var scope = NewDisposeScope();
        var crops = example.References.Select(r => new ReferenceCrop(ImageTensor.Load(ManifestReader.Resolve(world.Dataset, r.Image), 32), r.Concept, r.SourceId)).ToList();
        long[] seeds = [11, 22, 33];
        var batch = ReferenceSampler.Generate(world.Model, net, ["1girl", "1girl", "1girl"], [crops, crops, crops], Small.Sampling, sampleSeeds: seeds);
        for (int i = 0; i < seeds.Length; i++)
        {
            var alone = ReferenceSampler.Generate(world.Model, net, ["1girl"], [crops], Small.Sampling with { Seed = seeds[i] });
            double difference = (batch[i] - alone[0]).abs().max().item<float>();
            Assert.True(difference < 1e-4, $"sample {i}: batched and alone differ by {difference}");
        }
        // Different seeds in one batch give different samples.
        Assert.True((batch[0] - batch[1]).abs().max().item<float>() > 1e-2);
        // Split across two threads (2 + 1 samples), the samples are the same up to rounding and in the same order.
        using (var pool = new TorchWorkerPool(2, "test-sampling"))
        {
            var split = ReferenceSampler.GenerateSplit(world.Model, net, ["1girl", "1girl", "1girl"], [crops, crops, crops], Small.Sampling, seeds, pool.Workers);
            Assert.Equal(batch.shape, split.shape);
            double difference = (batch - split).abs().max().item<float>();
            Assert.True(difference < 1e-4, $"split and whole batch differ by {difference}");
        }
        Assert.Throws<ArgumentException>(() => ReferenceSampler.Generate(world.Model, net, ["1girl"], [crops], Small.Sampling with { Eta = 1 }, sampleSeeds: [1]));
    }

    [Fact]
    public void IP_Adapter_samples_split_across_threads_keep_their_own_references()
    {
        // The image tokens reach the U-Net through per-thread state: two threads sampling at once must not see each
        // other's references. Each sample has other references, so a mix-up would move it far beyond rounding.
        var branch = (IpAdapterModel)ReferenceModels.Create("ipadapter", world.Model);
        Assert.True(branch.ConcurrentPredict);
        using var scope = NewDisposeScope();
        var sets = ManifestReader.Read(world.Dataset, ReferenceScheme.B).Take(4).Select(example => (IReadOnlyList<ReferenceCrop>)example.References
            .Select(r => new ReferenceCrop(ImageTensor.Load(ManifestReader.Resolve(world.Dataset, r.Image), 32), r.Concept, r.SourceId)).ToList()).ToList();
        // Untrained projections give near-zero image attention; scaled up, the references move the samples visibly.
        branch.Scale = 50;
        long[] seeds = [5, 5, 5, 5];
        string[] prompts = ["1girl", "1girl", "1girl", "1girl"];
        var whole = ReferenceSampler.Generate(world.Model, branch, prompts, sets, Small.Sampling, sampleSeeds: seeds);
        Assert.True((whole[0] - whole[2]).abs().max().item<float>() > 1e-2, "the references do not move the samples: the test would not see a mix-up");
        using var pool = new TorchWorkerPool(2, "test-sampling");
        for (int round = 0; round < 3; round++)
        {
            var split = ReferenceSampler.GenerateSplit(world.Model, branch, prompts, sets, Small.Sampling, seeds, pool.Workers);
            double difference = (whole - split).abs().max().item<float>();
            Assert.True(difference < 1e-4, $"round {round}: split and whole batch differ by {difference}");
        }
    }

    [Fact]
    public void A_decoupled_attention_set_on_one_thread_is_not_seen_on_another()
    {
        using var attention = new Attention(8, 8, 2, 4);
        var bound = new FixedDecoupledAttention();
        attention.Decoupled = bound;
        IDecoupledAttention? seenElsewhere = bound;
        var thread = new Thread(() => seenElsewhere = attention.Decoupled);
        thread.Start();
        thread.Join();
        Assert.Null(seenElsewhere);
        Assert.Same(bound, attention.Decoupled);
        attention.Decoupled = null;
        Assert.Null(attention.Decoupled);
    }

    sealed class FixedDecoupledAttention : IDecoupledAttention
    {
        public Tensor? Attend(Tensor query) => null;
    }

    [Fact]
    public void Composition_sets_take_faces_and_clothes_from_different_outfits_of_one_character()
    {
        var manifest = ManifestReader.Read(world.Dataset, ReferenceScheme.B);
        var records = DatasetLayout.ReadRecords(world.Dataset).ToDictionary(r => r.Id);
        var sets = EvaluationSets.Choose(manifest, records.Values.ToList(), EvaluationSplit.Composition, 10, 1);
        Assert.NotEmpty(sets);
        foreach (var set in sets)
        {
            var faces = set.References.Where(r => r.Concept == Concept.Face).ToList();
            var clothes = set.References.Where(r => r.Concept == Concept.Clothes).ToList();
            Assert.NotEmpty(faces);
            Assert.NotEmpty(clothes);
            foreach (var r in set.References)
            {
                Assert.Equal(set.Character, records[r.SourceId].Character);
                Assert.NotEqual(set.Id, r.SourceId);
                Assert.True(File.Exists(ManifestReader.Resolve(world.Dataset, r.Image)), r.Image);
            }
            Assert.All(faces, f => Assert.NotEqual(set.ClothingId, records[f.SourceId].ClothingId));
            Assert.All(clothes, c => Assert.Equal(set.ClothingId, records[c.SourceId].ClothingId));
            Assert.Equal(faces.Select(f => records[f.SourceId].ClothingId), set.FaceClothingIds);
        }
        // Deterministic for a seed; spread over characters before repeating one.
        Assert.Equal(sets.Select(s => s.Id), EvaluationSets.Choose(manifest, records.Values.ToList(), EvaluationSplit.Composition, 10, 1).Select(s => s.Id));
        var two = EvaluationSets.Choose(manifest, records.Values.ToList(), EvaluationSplit.Unseen, 2, 1);
        Assert.All(two, s => Assert.Equal(SplitNames.Unseen, manifest.Single(e => e.Target == s.Id).Split));
    }

    [Fact]
    public void A_dataset_without_ground_truth_gives_no_probe_scores_and_says_so()
    {
        var copy = world.NewFolder();
        CopyFolder(world.Dataset, copy);
        File.Delete(Path.Combine(copy, SynthAttributesFile.FileName));
        using var suite = EvaluationSuite.Create(copy, EvaluationWorld.SuiteOptions with { IdentityView = IdentityView.BestWindow, IdentityBaselineExamples = 4 }, seed: 3);
        Assert.Null(suite.ProbeReport);
        Assert.StartsWith("best of 14 windows", suite.Describe()["identity_view"]);
        var windows = EvaluationViews.Windows(32, 32);
        Assert.Equal(14, windows.Count);
        Assert.All(windows, w => Assert.True(w.Left >= 0 && w.Top >= 0 && w.Right <= 32 && w.Bottom <= 32 && w.Width >= 16, w.ToString()));
        Assert.Equal("none", suite.Describe()["vqa"]);
        // One unreadable reference crop: its set is reported and skipped, the other set is still scored.
        var chosen = EvaluationSets.Choose(ManifestReader.Read(copy, ReferenceScheme.B), DatasetLayout.ReadRecords(copy), EvaluationSplit.Seen, 2, Small.Seed);
        Assert.Equal(2, chosen.Count);
        var broken = ManifestReader.Resolve(copy, chosen[0].References[0].Image);
        File.WriteAllText(broken, "not a png");
        var textOnly = new TextOnlyModel(world.Model.Unet);
        var result = suite.Evaluate(new EvaluatedModel("text-only", world.Model, textOnly), copy, Small with { ReferenceSets = 2, SaveImages = false }, world.NewFolder());
        Assert.Equal([chosen[1].Id], result.Sets.Select(s => s.SetId));
        Assert.Contains(result.Notes, n => n.Contains(chosen[0].Id, StringComparison.Ordinal) && n.Contains(broken, StringComparison.Ordinal));
        Assert.All(result.Rows, r => Assert.Equal(chosen[1].Id, r.ReferenceSetId));
        Assert.Null(result.Score("prompt_consistency"));
        Assert.Null(result.Score("swd"));
        Assert.NotNull(result.Score("identity"));
        Assert.NotNull(result.Score("leakage"));
        Assert.Contains(result.Notes, n => n.Contains("attributes.jsonl", StringComparison.Ordinal) && n.Contains("omitted", StringComparison.Ordinal));
        Assert.All(result.Rows, r => Assert.Null(r.ImagePath));
    }

    [Fact]
    public void The_probe_is_cached_in_the_dataset_and_reused()
    {
        var copy = world.NewFolder();
        CopyFolder(world.Dataset, copy);
        var options = EvaluationWorld.SuiteOptions with { CacheProbe = true };
        IReadOnlyDictionary<string, string> first, second;
        using (var suite = EvaluationSuite.Create(copy, options, seed: 3)) first = suite.Describe();
        Assert.True(File.Exists(Path.Combine(copy, EvaluationProbe.Folder, "probe.weights")));
        using (var suite = EvaluationSuite.Create(copy, options, seed: 3)) second = suite.Describe();
        Assert.Equal("trained", first["probe_source"]);
        Assert.StartsWith("cache", second["probe_source"]);
        Assert.Equal(first["probe_accuracy"], second["probe_accuracy"]);
        using (var suite = EvaluationSuite.Create(copy, options, seed: 4)) Assert.Equal("trained", suite.Describe()["probe_source"]);
    }

    [Fact]
    public void A_probe_trained_on_a_world_of_new_characters_is_scored_on_every_dataset_picture_and_cached_by_world_size()
    {
        var copy = world.NewFolder();
        CopyFolder(world.Dataset, copy);
        var records = DatasetLayout.ReadRecords(copy);
        var options = EvaluationWorld.SuiteOptions.Probe with { Seed = 3 };
        var notes = new List<string>();
        var data = new ProbeData(copy, records, 32);
        var world48 = EvaluationProbe.Prepare(data, options, useCache: true, notes, worldPictures: 48)!;
        Assert.False(world48.FromCache);
        // Trained on 48 rendered pictures, none of the dataset's; scored on every labelled picture of the dataset.
        Assert.Equal(48, world48.Report.TrainCount);
        Assert.Equal(records.Count, world48.Report.HeldOutCount);
        var again = EvaluationProbe.Prepare(data, options, useCache: true, notes, worldPictures: 48)!;
        Assert.True(again.FromCache);
        Assert.Equal(world48.Probe.Fingerprint(), again.Probe.Fingerprint());
        var own = EvaluationProbe.Prepare(data, options, useCache: true, notes, worldPictures: 0)!;
        Assert.False(own.FromCache);
        Assert.Equal(records.Count, own.Report.TrainCount + own.Report.HeldOutCount);
        Assert.StartsWith("48 pictures of new random characters (none of the dataset's), 2 epochs", world48.Training);
        Assert.Equal(world48.Training, again.Training);
        Assert.EndsWith($"accuracy on the other {own.Report.HeldOutCount}", own.Training);
        foreach (var p in new[] { world48, again, own }) p.Probe.Dispose();
        var error = Assert.Throws<ArgumentException>(() => EvaluationProbe.Prepare(data, options, useCache: false, notes, worldPictures: -1));
        Assert.Contains("world pictures must be 0..", error.Message);
        // A probe this briefly trained cannot read most attributes: they are marked, left out of prompt consistency and noted.
        Assert.Equal(AttributeProbe.UnreadableAttributes(EvaluationProbe.SynthSchema(), world48.Report).ToHashSet(), world48.Probe.Unreadable.ToHashSet());
        Assert.Equal(world48.Probe.Unreadable.ToHashSet(), again.Probe.Unreadable.ToHashSet());
        Assert.All(notes, n => Assert.StartsWith("prompt consistency and readability leave out ", n));
    }

    [Fact]
    public void A_probe_of_new_characters_is_shared_between_datasets_and_measured_on_each_as_if_trained_for_it()
    {
        var first = world.NewFolder();
        var second = world.NewFolder();
        CopyFolder(world.Dataset, first);
        CopyFolder(world.Dataset, second);
        var shared = world.NewFolder();
        var records = DatasetLayout.ReadRecords(first);
        var half = records.Take(records.Count / 2).ToList(); // the second dataset scores other pictures
        var options = EvaluationWorld.SuiteOptions.Probe with { Seed = 5 };
        var notes = new List<string>();

        var trained = EvaluationProbe.Prepare(new ProbeData(first, records, 32), options, useCache: true, notes, worldPictures: 48, worldCache: shared)!;
        Assert.Null(trained.WeightsSharedFrom);
        var loaded = EvaluationProbe.Prepare(new ProbeData(second, half, 32), options, useCache: true, notes, worldPictures: 48, worldCache: shared)!;
        Assert.NotNull(loaded.WeightsSharedFrom);
        Assert.StartsWith(shared, loaded.WeightsSharedFrom);
        // What a fresh training for the second dataset would give, without the shared folder: the same weights and report.
        var fresh = EvaluationProbe.Prepare(new ProbeData(second, half, 32), options, useCache: false, notes, worldPictures: 48)!;
        Assert.Equal(fresh.Probe.Fingerprint(), loaded.Probe.Fingerprint());
        Assert.Equal(trained.Probe.Fingerprint(), loaded.Probe.Fingerprint());
        Assert.Equal(fresh.Report.HeldOutAccuracy, loaded.Report.HeldOutAccuracy);
        Assert.Equal(fresh.Report.FinalTrainLoss, loaded.Report.FinalTrainLoss);
        Assert.Equal(half.Count, loaded.Report.HeldOutCount);
        Assert.Equal(48, loaded.Report.TrainCount);
        Assert.Equal(fresh.Training, loaded.Training);

        // Another seed is another probe; a damaged entry is retrained and replaced, not trusted.
        var otherSeed = EvaluationProbe.Prepare(new ProbeData(second, half, 32), options with { Seed = 6 }, useCache: true, notes, worldPictures: 48, worldCache: shared)!;
        Assert.Null(otherSeed.WeightsSharedFrom);
        var entry = loaded.WeightsSharedFrom!;
        File.WriteAllText(Path.Combine(entry, "probe.weights"), "not weights");
        var third = world.NewFolder();
        CopyFolder(world.Dataset, third);
        var retrained = EvaluationProbe.Prepare(new ProbeData(third, half, 32), options, useCache: true, notes, worldPictures: 48, worldCache: shared)!;
        Assert.Null(retrained.WeightsSharedFrom);
        Assert.Equal(fresh.Probe.Fingerprint(), retrained.Probe.Fingerprint());
        using (var replaced = AttributeProbe.Load(entry)) Assert.Equal(fresh.Probe.Fingerprint(), replaced.Fingerprint());
        Assert.Empty(Directory.GetDirectories(shared, "*.tmp-*"));
        foreach (var p in new[] { trained, loaded, fresh, otherSeed, retrained }) p.Probe.Dispose();
    }

    [Fact]
    public void A_second_suite_on_the_same_dataset_reads_every_real_image_yardstick_from_the_cache_and_scores_the_same()
    {
        var copy = world.NewFolder();
        CopyFolder(world.Dataset, copy);
        var options = EvaluationWorld.SuiteOptions with { CacheProbe = true, CacheBaselines = true };
        var net = new RetriNet(world.Model.Unet);
        var evaluation = Small with { ReferenceSets = 1, SaveImages = false };
        (EvaluationResult Result, IReadOnlyDictionary<string, string> Provenance, string Json) Run()
        {
            using var suite = EvaluationSuite.Create(copy, options, seed: 3);
            var outDir = world.NewFolder();
            var result = suite.Evaluate(new EvaluatedModel("retrinet", world.Model, net), copy, evaluation, outDir);
            return (result, suite.Provenance(), File.ReadAllText(Path.Combine(outDir, "results.json")));
        }
        var first = Run();
        var second = Run();
        var sources = first.Provenance.Keys.Where(k => k.StartsWith("cache_source/", StringComparison.Ordinal)).ToList();
        foreach (var expected in new[] { "identity_baseline@32", "attribute_agreement_baseline@32", "leakage_baseline@32/", "kid_real@", "readability_real@" })
            Assert.Contains(sources, k => k.StartsWith("cache_source/" + expected, StringComparison.Ordinal));
        Assert.All(sources, k => Assert.StartsWith("computed, saved to " + Path.Combine(copy, "evaluation-cache"), first.Provenance[k]));
        Assert.Equal(sources, second.Provenance.Keys.Where(k => k.StartsWith("cache_source/", StringComparison.Ordinal)));
        Assert.All(sources, k => Assert.StartsWith("cache " + Path.Combine(copy, "evaluation-cache"), second.Provenance[k]));
        // The same numbers bit for bit: every summary, the baselines of the description, the notes, results.json.
        Assert.Equal(first.Result.Summary.OrderBy(kv => kv.Key, StringComparer.Ordinal), second.Result.Summary.OrderBy(kv => kv.Key, StringComparer.Ordinal));
        Assert.Equal(first.Provenance.Where(kv => !kv.Key.Contains("source", StringComparison.Ordinal)), second.Provenance.Where(kv => !kv.Key.Contains("source", StringComparison.Ordinal)));
        Assert.Equal(first.Result.Notes, second.Result.Notes);
        Assert.Equal(first.Json, second.Json);
    }

    [Fact]
    public void A_corrupt_or_mismatched_cache_file_is_named_in_the_notes_and_recomputed()
    {
        var copy = world.NewFolder();
        CopyFolder(world.Dataset, copy);
        var options = EvaluationWorld.SuiteOptions with { CacheProbe = true, CacheBaselines = true };
        const string label = "cache_source/identity_baseline@32";
        string expected;
        using (var suite = EvaluationSuite.Create(copy, options, seed: 3)) expected = suite.Describe()["identity_baseline@32"];
        var file = Directory.GetFiles(Path.Combine(copy, "evaluation-cache"), "identity-*.json").Single();
        var good = File.ReadAllText(file);

        var wrongValue = JsonNode.Parse(good)!.AsObject();
        wrongValue["value"] = "not a baseline";
        var damaged = new[]
        {
            ("unreadable", good[..(good.Length / 2)]), // cut short
            ("made for other inputs", good.Replace(JsonNode.Parse(good)!["key"]!.GetValue<string>(), new string('0', 64))),
            ("unreadable", wrongValue.ToJsonString()),
        };
        foreach (var (problem, content) in damaged)
        {
            File.WriteAllText(file, content);
            using (var suite = EvaluationSuite.Create(copy, options, seed: 3))
            {
                Assert.Contains(suite.Notes, n => n.Contains(file, StringComparison.Ordinal) && n.Contains(problem, StringComparison.Ordinal) && n.Contains("recomputed", StringComparison.Ordinal));
                Assert.Equal(expected, suite.Describe()["identity_baseline@32"]);
                Assert.StartsWith("computed, saved to", suite.Provenance()[label]);
            }
            // Recomputing rewrote a good file: the next suite reads it without a note.
            using (var suite = EvaluationSuite.Create(copy, options, seed: 3))
            {
                Assert.StartsWith("cache ", suite.Provenance()[label]);
                Assert.DoesNotContain(suite.Notes, n => n.Contains("evaluation cache", StringComparison.Ordinal));
                Assert.Equal(expected, suite.Describe()["identity_baseline@32"]);
            }
        }
        // Another seed is another key: its own file, computed beside the first.
        using (var suite = EvaluationSuite.Create(copy, options, seed: 4)) Assert.StartsWith("computed", suite.Provenance()[label]);
        Assert.Equal(2, Directory.GetFiles(Path.Combine(copy, "evaluation-cache"), "identity-*.json").Length);
    }

    [Fact]
    public void Cli_evaluate_prints_the_summary_table_and_writes_results()
    {
        var data = world.NewFolder();
        CopyFolder(world.Dataset, data);
        var checkpoint = world.NewFolder();
        ReferenceModelStore.Save(world.Model, new TextOnlyModel(world.Model.Unet), checkpoint);
        var outDir = world.NewFolder();
        var console = new TestConsole().Width(200);
        int code = RetriBooru.Cli.CliApp.Run(["evaluate", "--checkpoint", checkpoint, "--data", data, "--split", "unseen", "--sets", "1",
            "--samples-per-reference", "2", "--steps", "2", "--seed", "5", "--out", outDir, "--bootstrap", "100", "--identity-view", "whole", "--probe-world", "40"], console);
        Assert.True(code == 0, console.Output);
        foreach (var metric in new[] { "identity_face", "identity_clothes", "leakage", "swd", "kid", "kid_floor", "kid_ceiling", "95% CI" })
            Assert.True(console.Output.Contains(metric, StringComparison.Ordinal), $"output lacks {metric}:\n{console.Output}");
        Assert.True(File.Exists(Path.Combine(outDir, "results.csv")));
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "results.json")))!;
        Assert.Equal("text-only", (string?)json["config"]!["model"]);
        Assert.Equal("unseen", (string?)json["config"]!["split"]);
        Assert.Equal(2, json["rows"]!.AsArray().Count(r => (string?)r!["row_type"] == "sample"));

        var bad = new TestConsole().Width(200);
        Assert.NotEqual(0, RetriBooru.Cli.CliApp.Run(["evaluate", "--checkpoint", checkpoint, "--data", data, "--split", "train", "--out", outDir], bad));
        Assert.True(bad.Output.Contains("--split: unknown split 'train'", StringComparison.Ordinal), bad.Output);
        var badWorld = new TestConsole().Width(200);
        Assert.NotEqual(0, RetriBooru.Cli.CliApp.Run(["evaluate", "--checkpoint", checkpoint, "--data", data, "--split", "seen", "--probe-world", "-3", "--out", outDir], badWorld));
        Assert.True(badWorld.Output.Contains("--probe-world", StringComparison.Ordinal), badWorld.Output);
    }

    /// <summary>The scheme-b manifest with every target id replaced by one that climbs out of any folder.</summary>
    string EscapingManifest()
    {
        var manifest = ManifestReader.Read(world.Dataset, ReferenceScheme.B).Select((e, i) => e with { Target = $"../../../escaped{i}" }).ToList();
        var path = Path.Combine(world.NewFolder(), "escaping.jsonl");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        ManifestReader.Write(path, manifest);
        return path;
    }

    [Fact]
    public void A_reference_path_that_leaves_the_dataset_skips_its_set_with_a_note_and_the_other_sets_are_scored()
    {
        var manifest = ManifestReader.Read(world.Dataset, ReferenceScheme.B);
        var options = Small with { ReferenceSets = 3 };
        var chosen = EvaluationSets.Choose(manifest, DatasetLayout.ReadRecords(world.Dataset), options.Split, options.ReferenceSets, options.Seed);
        Assert.Equal(3, chosen.Count);
        var crafted = manifest.Select(e => e.Target != chosen[0].Id ? e
            : e with { References = e.References.Select((r, i) => i == 0 ? r with { Image = "../../../../etc/hostname" } : r).ToList() }).ToList();
        var path = Path.Combine(world.NewFolder(), "crafted.jsonl");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        ManifestReader.Write(path, crafted);

        var result = world.Suite.Evaluate(new EvaluatedModel("m", world.Model, new TextOnlyModel(world.Model.Unet)), world.Dataset, options with { ManifestPath = path, SaveImages = false }, world.NewFolder());
        Assert.Equal(chosen.Skip(1).Select(s => s.Id), result.Sets.Select(s => s.SetId));
        var note = Assert.Single(result.Notes, n => n.StartsWith($"reference set {chosen[0].Id} skipped", StringComparison.Ordinal));
        Assert.Contains("../../../../etc/hostname", note);
        Assert.Contains("outside", note);
    }

    [Fact]
    public void A_manifest_target_id_that_leaves_the_output_folder_fails_before_anything_is_written()
    {
        var parent = world.NewFolder();
        var outDir = Path.Combine(parent, "a", "b", "out");
        var e = Assert.Throws<InvalidDataException>(() => world.Suite.Evaluate(new EvaluatedModel("m", world.Model, new TextOnlyModel(world.Model.Unet)), world.Dataset, Small with { ManifestPath = EscapingManifest() }, outDir));
        Assert.Contains("samples/../../../escaped", e.Message);
        Assert.Contains("outside", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        // Followed, the id would have written parent/a/escaped0/0.png: nothing at all is written under parent.
        Assert.False(Directory.Exists(parent));
    }

    [Fact]
    public void Cli_evaluate_and_sample_refuse_a_non_empty_out_unless_overwrite_and_swap_the_new_results_in_whole()
    {
        var data = world.NewFolder();
        CopyFolder(world.Dataset, data);
        var checkpoint = world.NewFolder();
        ReferenceModelStore.Save(world.Model, new TextOnlyModel(world.Model.Unet), checkpoint);
        var outDir = world.NewFolder();
        string[] Evaluate(params string[] extra) => ["evaluate", "--checkpoint", checkpoint, "--data", data, "--split", "unseen", "--sets", "1",
            "--samples-per-reference", "1", "--steps", "1", "--out", outDir, "--bootstrap", "10", "--identity-view", "whole", "--probe-world", "40", .. extra];
        (int Code, string Output) Run(string[] args)
        {
            var console = new TestConsole().Width(250);
            return (RetriBooru.Cli.CliApp.Run(args, console), console.Output);
        }

        var first = Run(Evaluate());
        Assert.True(first.Code == 0, first.Output);
        var results = File.ReadAllText(Path.Combine(outDir, "results.json"));
        var again = Run(Evaluate());
        Assert.NotEqual(0, again.Code);
        Assert.Contains("--overwrite", again.Output);
        Assert.Equal(results, File.ReadAllText(Path.Combine(outDir, "results.json")));

        // A bad manifest with --overwrite: one clear error, the earlier results untouched, no staging folder left.
        var escaping = Run(Evaluate("--overwrite", "--manifest", EscapingManifest()));
        Assert.Equal(1, escaping.Code);
        Assert.Contains("escaped", escaping.Output);
        Assert.Equal(results, File.ReadAllText(Path.Combine(outDir, "results.json")));
        Assert.False(Directory.Exists(outDir + ".new"));

        File.WriteAllText(Path.Combine(outDir, "left-by-the-earlier-run.txt"), "x");
        var replaced = Run(Evaluate("--overwrite", "--seed", "9"));
        Assert.True(replaced.Code == 0, replaced.Output);
        Assert.False(File.Exists(Path.Combine(outDir, "left-by-the-earlier-run.txt")));
        Assert.Equal(9L, (long)JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "results.json")))!["config"]!["seed"]!);
        Assert.False(Directory.Exists(outDir + ".new"));

        // sample: the same guard, and a reference image whose header claims 40000x40000 pixels is refused before decoding.
        var crop = ManifestReader.Resolve(data, ManifestReader.Read(data, ReferenceScheme.B)[0].References[0].Image);
        var samples = world.NewFolder();
        string[] Sample(params string[] extra) => ["sample", "--checkpoint", checkpoint, "--reference", $"face={crop}", "--count", "1", "--steps", "1", "--out", samples, .. extra];
        var sampled = Run(Sample());
        Assert.True(sampled.Code == 0, sampled.Output);
        var png = Directory.GetFiles(samples, "*.png").Single();
        var bytes = File.ReadAllBytes(png);
        Assert.Contains("--overwrite", Run(Sample()).Output);
        var typo = Run(["sample", "--checkpoint", checkpoint, "--reference", $"fase={crop}", "--out", world.NewFolder()]);
        Assert.Equal(2, typo.Code);
        Assert.Contains("unknown concept word 'fase' (did you mean 'face'?)", typo.Output);
        var missing = Run(["sample", "--checkpoint", checkpoint, "--reference", "face=/nonexistent/crop.png", "--out", world.NewFolder()]);
        Assert.Equal(1, missing.Code);
        Assert.Contains("/nonexistent/crop.png: file not found", missing.Output);
        var bombPath = Path.Combine(world.NewFolder(), "bomb.png");
        Directory.CreateDirectory(Path.GetDirectoryName(bombPath)!);
        File.WriteAllBytes(bombPath, DataTestFiles.PngClaiming(40000, 40000));
        var bomb = Run(["sample", "--checkpoint", checkpoint, "--reference", $"face={bombPath}", "--count", "1", "--steps", "1", "--out", samples, "--overwrite"]);
        Assert.Equal(1, bomb.Code);
        Assert.Contains("bomb.png", bomb.Output);
        Assert.Contains("40000x40000", bomb.Output);
        Assert.Equal(bytes, File.ReadAllBytes(png));
        Assert.False(Directory.Exists(samples + ".new"));
        var resampled = Run(Sample("--overwrite", "--seed", "3"));
        Assert.True(resampled.Code == 0, resampled.Output);
        Assert.Equal(["sample_3_000.png"], Directory.GetFiles(samples).Select(Path.GetFileName));
    }

    [Fact]
    public void Bad_options_and_missing_files_fail_with_clear_messages()
    {
        var net = new TextOnlyModel(world.Model.Unet);
        var e = Assert.Throws<ArgumentException>(() => world.Suite.Evaluate(new EvaluatedModel("m", world.Model, net), world.Dataset, Small with { Split = Words.Parse<EvaluationSplit>("train") }, world.NewFolder()));
        Assert.Contains("unknown split 'train'", e.Message);
        var missing = Assert.Throws<FileNotFoundException>(() => world.Suite.Evaluate(new EvaluatedModel("m", world.Model, net), world.Dataset, Small with { ManifestPath = "/nonexistent/m.jsonl" }, world.NewFolder()));
        Assert.Contains("/nonexistent/m.jsonl", missing.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => world.Suite.Evaluate(new EvaluatedModel("m", world.Model, net), world.Dataset, Small with { SamplesPerReference = 0 }, world.NewFolder()));
    }

    static void CopyFolder(string from, string to)
    {
        foreach (var dir in Directory.GetDirectories(from, "*", SearchOption.AllDirectories)) Directory.CreateDirectory(dir.Replace(from, to));
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from, "*", SearchOption.AllDirectories)) File.Copy(file, file.Replace(from, to));
    }
}
