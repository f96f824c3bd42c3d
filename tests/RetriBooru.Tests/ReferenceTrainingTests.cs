using RetriBooru.Settings;
using RetriBooru.Data;
using RetriBooru.Data.Synth;
using RetriBooru.Diffusion;
using RetriBooru.Modeling;
using RetriBooru.Runtime;
using Xunit;
using static TorchSharp.torch;

namespace RetriBooru.Tests;

/// <summary>A small RetriBooru-Synth dataset at 32 px and a freshly initialised tiny base model, shared by the tests.</summary>
public sealed class SmallReferenceWorld : IDisposable
{
    readonly TempDir _dir = new();
    public string Dataset { get; }
    public IReadOnlyList<TrainingExample> Train { get; }

    public SmallReferenceWorld()
    {
        Torch.Load();
        Dataset = Path.Combine(_dir.Path, "data");
        SynthDataset.Create(Dataset, new SynthOptions { Characters = 4, OutfitsPerCharacter = 2, ImagesPerCharacter = 10, Size = 32, Seed = 5 });
        Train = ManifestReader.Read(Dataset, ReferenceScheme.B, "train");
    }

    public DiffusionModel NewBase(long seed = 1) =>
        BaseModelFactory.Create(ModelConfigs.Tiny, new DatasetFolderSource(Dataset, 32), seed);

    public ReferenceDataset Examples() => new(Dataset, Train, 32);

    /// <summary>The losses of three RetriNet steps on a fresh base (seed 8) with these training options.</summary>
    public List<double> ThreeRetriNetLosses(ReferenceTrainingOptions options)
    {
        using var dir = new TempDir();
        using var model = NewBase(seed: 8);
        var net = new RetriNet(model.Unet);
        using var data = Examples();
        using var task = new ReferenceTrainingTask(model, net, data, options);
        return new DiffusionTrainer(task, new TrainerOptions { Steps = 3, BatchSize = 6, LearningRate = 3e-3, WarmupSteps = 1, Seed = 11 }).Run(dir.Path).Losses.ToList();
    }

    /// <summary>
    /// A setting added after runs were cached: at its off value it leaves the stage key and three training losses as
    /// they were; on, it changes the losses and they stay finite.
    /// </summary>
    public void AssertOffChangesNothingAndOnChangesTheLosses(ReferenceTrainingOptions off, ReferenceTrainingOptions on)
    {
        Assert.Equal(Experiments.StageCache.Key(new { train = new ReferenceTrainingOptions() }), Experiments.StageCache.Key(new { train = off }));
        var plain = ThreeRetriNetLosses(new ReferenceTrainingOptions());
        Assert.Equal(plain, ThreeRetriNetLosses(off));
        var changed = ThreeRetriNetLosses(on);
        Assert.NotEqual(plain, changed);
        Assert.All(changed, loss => Assert.True(double.IsFinite(loss)));
    }

    public void Dispose() => _dir.Dispose();
}

public class ReferenceTrainingTests(SmallReferenceWorld world) : IClassFixture<SmallReferenceWorld>
{
    static readonly TrainerOptions Quick = new() { Steps = 40, BatchSize = 8, LearningRate = 3e-3, WarmupSteps = 3, Seed = 11 };

    [Fact]
    public void Masked_loss_counts_only_the_figure()
    {
        Torch.Load();
        using var scope = NewDisposeScope();
        var error = ones(1, 3, 2, 2);
        error[0, .., 0, 0] = tensor(9f);
        var mask = zeros(1, 1, 2, 2);
        mask[0, 0, 1, 1] = tensor(1f);
        Assert.Equal(1f, ReferenceTrainingTask.MaskedMean(error, mask).item<float>());
        mask[0, 0, 0, 0] = tensor(1f);
        Assert.Equal(5f, ReferenceTrainingTask.MaskedMean(error, mask).item<float>());
        Assert.Equal(0f, ReferenceTrainingTask.MaskedMean(error, zeros(1, 1, 2, 2)).item<float>());

        // A background weight w: weights m + w (1 - m). Figure pixel (error 1) and three background pixels at w = 0.5:
        // (1*1 + 0.5*(9 + 1 + 1)) / (1 + 0.5*3) = 6.5 / 2.5.
        var figure = zeros(1, 1, 2, 2);
        figure[0, 0, 1, 1] = tensor(1f);
        var weights = ReferenceTrainingTask.WithBackground(figure, 0.5);
        Assert.Equal(new[] { 0.5f, 0.5f, 0.5f, 1f }, weights.data<float>().ToArray());
        Assert.Equal(6.5f / 2.5f, ReferenceTrainingTask.MaskedMean(error, weights).item<float>(), 5);
        Assert.True(ReferenceTrainingTask.WithBackground(figure, 0).eq(figure).all().item<bool>(), "weight 0 is the hard mask");
        Assert.True(ReferenceTrainingTask.WithBackground(figure, 1).eq(1f).all().item<bool>(), "weight 1 is the plain loss");
        Assert.Throws<ArgumentOutOfRangeException>(() => new ReferenceTrainingOptions { BackgroundWeight = 1.5 }.Validate());
    }

    [Fact]
    public void Concept_words_are_tokens_of_the_tag_vocabulary()
    {
        using var model = world.NewBase();
        var tokenizer = Assert.IsType<RetriBooru.Modeling.Tokenizers.TagTokenizer>(model.Tokenizer);
        Assert.NotEqual(RetriBooru.Modeling.Tokenizers.TagTokenizer.UnknownId, tokenizer.IdOf(Concept.Face.Name()));
        Assert.NotEqual(tokenizer.IdOf(Concept.Face.Name()), tokenizer.IdOf(Concept.Clothes.Name()));
    }

    [Fact]
    public void RetriNet_learns_samples_follow_references_and_checkpoints_round_trip()
    {
        using var tmp = new TempDir();
        using var model = world.NewBase();
        var net = new RetriNet(model.Unet);
        using var data = world.Examples();
        Assert.True(data.Count >= 16, $"only {data.Count} training examples");
        Assert.Empty(data.Skipped);
        using var task = new ReferenceTrainingTask(model, net, data, new ReferenceTrainingOptions { PromptDropout = 0.1, ReferenceDropout = 0.1 });
        var result = new DiffusionTrainer(task, Quick).Run(tmp.Path);
        Assert.True(result.Finished);
        // The checkpoint records the settings record itself: every field under its spec name, with the values trained with.
        var state = System.Text.Json.JsonSerializer.Deserialize<TrainerState>(File.ReadAllText(Path.Combine(tmp.Path, DiffusionTrainer.CheckpointFolder, DiffusionTrainer.StateFile)), RetriBooru.Data.WorkbenchJson.Lines)!;
        var recorded = state.Task["settings"]!.AsObject();
        Assert.Equal(RetriBooru.Settings.SettingFields.Of(typeof(ReferenceTrainingOptions)).Select(f => f.JsonName).Order(), recorded.Select(kv => kv.Key).Intersect(RetriBooru.Settings.SettingFields.Of(typeof(ReferenceTrainingOptions)).Select(f => f.JsonName)).Order());
        Assert.Equal(0.1, (double)recorded["reference_dropout"]!);
        Assert.Equal("full", (string)recorded["prompt_view"]!);
        // Per-step losses are noisy (random timesteps): compare the first steps with the last quarter.
        double first = result.Losses.Take(4).Average(), last = result.Losses.TakeLast(10).Average();
        Assert.True(last < 0.75 * first, $"loss did not fall: first {first:F4}, last {last:F4}");

        var prompts = new[] { data.Get(0).Prompt, data.Get(0).Prompt };
        var refsA = data.Get(0).References;
        var other = data.Items.First(e => e.Character != data.Get(0).Character);
        var options = new ReferenceSamplingOptions { Steps = 6, Seed = 3 };
        using var scope = NewDisposeScope();
        var samples = ReferenceSampler.Generate(model, net, prompts, [refsA, other.References], options);
        Assert.Equal(new long[] { 2, 3, 32, 32 }, samples.shape);
        Assert.True(samples.abs().max().item<float>() <= 1f);
        var again = ReferenceSampler.Generate(model, net, prompts, [refsA, other.References], options);
        Assert.True(samples.eq(again).all().item<bool>(), "same seed must give the same images");
        Assert.True((samples[0] - samples[1]).abs().mean().item<float>() > 1e-4, "different references must give different samples");

        var (loadedModel, loadedBranch) = ReferenceModelStore.Load(Path.Combine(tmp.Path, "model"));
        using (loadedModel)
        {
            Assert.IsType<RetriNet>(loadedBranch);
            var reloaded = ReferenceSampler.Generate(loadedModel, loadedBranch, prompts, [refsA, other.References], options);
            Assert.True(samples.eq(reloaded).all().item<bool>(), "a reloaded checkpoint must sample the same images");
        }
    }

    [Fact]
    public void Decoder_learning_rate_scale_slows_only_the_base_decoder()
    {
        using var tmp = new TempDir();
        using var model = world.NewBase();
        var net = new RetriNet(model.Unet);
        using var data = world.Examples();
        // Scale 0: the decoder must not move at all (weight decay is scaled too) while the new branch trains.
        using var task = new ReferenceTrainingTask(model, net, data, new ReferenceTrainingOptions { DecoderLearningRateScale = 0 });
        Assert.NotEmpty(task.DecoderParameters);
        Assert.All(task.DecoderParameters, name => Assert.StartsWith("unet.", name));
        Assert.Contains(task.TrainableParameters, p => p.Key.StartsWith("zero_convs.", StringComparison.Ordinal) && !task.DecoderParameters.Contains(p.Key));
        var before = task.TrainableParameters.ToDictionary(p => p.Key, p => p.Value.detach().clone());
        new DiffusionTrainer(task, Quick with { Steps = 4 }).Run(tmp.Path);
        foreach (var (name, p) in task.TrainableParameters)
        {
            bool same = p.detach().eq(before[name]).all().item<bool>();
            if (task.DecoderParameters.Contains(name)) Assert.True(same, $"{name} moved with scale 0");
        }
        Assert.Contains(task.TrainableParameters, p => !task.DecoderParameters.Contains(p.Key) && !p.Value.detach().eq(before[p.Key]).all().item<bool>());
        foreach (var t in before.Values) t.Dispose();
        Assert.Throws<ArgumentOutOfRangeException>(() => new ReferenceTrainingOptions { DecoderLearningRateScale = -1 }.Validate());
    }

    [Fact]
    public void Resuming_gives_bit_identical_losses()
    {
        using var whole = new TempDir();
        using var split = new TempDir();
        var options = Quick with { Steps = 6, BatchSize = 4 };
        List<double> Train(string dir, int? stopAfter, bool resume)
        {
            using var model = world.NewBase(seed: 4);
            var net = new RetriNet(model.Unet);
            using var data = world.Examples();
            using var task = new ReferenceTrainingTask(model, net, data);
            if (resume) Seeding.Seed(999); // global RNG state must not matter
            return new DiffusionTrainer(task, options with { StopAfter = stopAfter }).Run(dir, resume).Losses.ToList();
        }
        var uninterrupted = Train(whole.Path, null, false);
        var head = Train(split.Path, 3, false);
        var tail = Train(split.Path, null, true);
        Assert.Equal(uninterrupted, head.Concat(tail).ToList());
    }

    [Theory]
    [InlineData("retrinet")]
    [InlineData("ipadapter")]
    [InlineData("controlnet")]
    public void A_masked_batch_split_across_threads_has_the_loss_of_the_whole_batch(string kind)
    {
        List<double> Train(int shards)
        {
            using var dir = new TempDir();
            using var model = world.NewBase(seed: 8);
            var net = ReferenceModels.Create(kind, model);
            using var data = world.Examples();
            // Masked loss with a background weight: the normaliser is the whole batch's mask sum, so shards add up.
            using var task = new ReferenceTrainingTask(model, net, data, new ReferenceTrainingOptions { BackgroundWeight = 0.3 });
            var result = new DiffusionTrainer(task, Quick with { Steps = 3, BatchSize = 5 }) { Shards = shards }.Run(dir.Path);
            Assert.Equal(shards, result.Shards);
            return result.Losses.ToList();
        }
        var single = Train(1);
        var split = Train(2);
        for (int i = 0; i < single.Count; i++)
            Assert.True(Math.Abs(single[i] - split[i]) <= 1e-4 * Math.Abs(single[i]), $"step {i}: {single[i]} vs {split[i]}");
    }

    [Theory]
    [InlineData("controlnet")]
    [InlineData("ipadapter")]
    [InlineData("text-only")]
    public void Baselines_train_and_sample_through_the_same_code(string kind)
    {
        using var tmp = new TempDir();
        using var model = world.NewBase(seed: 6);
        var branch = ReferenceModels.Create(kind, model);
        var frozen = model.Unet.named_parameters().Where(p => !p.parameter.requires_grad).ToDictionary(p => p.name, p => p.parameter.detach().clone());
        using var data = world.Examples();
        using var task = new ReferenceTrainingTask(model, branch, data);
        var trainableBefore = task.TrainableParameters.ToDictionary(p => p.Key, p => p.Value.detach().clone());
        var result = new DiffusionTrainer(task, Quick with { Steps = 3, BatchSize = 4 }) { Shards = 2 }.Run(tmp.Path);
        Assert.True(result.Losses.All(double.IsFinite));
        Assert.Equal(2, result.Shards);
        foreach (var (name, before) in frozen)
            Assert.True(model.Unet.named_parameters().First(p => p.name == name).parameter.eq(before).all().item<bool>(), $"{kind}: frozen {name} changed");
        Assert.Contains(task.TrainableParameters, p => !p.Value.eq(trainableBefore[p.Key]).all().item<bool>());
        using var scope = NewDisposeScope();
        var images = ReferenceSampler.Generate(model, branch, [data.Get(0).Prompt], [data.Get(0).References], new ReferenceSamplingOptions { Steps = 3, Seed = 1 });
        Assert.False(images.isnan().any().item<bool>());
        var (reloaded, reloadedBranch) = ReferenceModelStore.Load(Path.Combine(tmp.Path, "model"));
        using (reloaded) Assert.Equal(kind, reloadedBranch.Kind.Name());
    }
}
